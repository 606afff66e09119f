#include "train/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/philox.h"

namespace cs {

int32_t choose_token(const float* logits, int64_t vocab, const SamplingParams& p, uint64_t step) {
  if (p.temperature <= 0) return int32_t(std::max_element(logits, logits + vocab) - logits);
  std::vector<int32_t> idx(static_cast<size_t>(vocab));
  std::iota(idx.begin(), idx.end(), 0);
  // Descending by logit, ties by id: a deterministic order.
  std::sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) {
    return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
  });
  const size_t k = p.top_k > 0 ? std::min<size_t>(size_t(p.top_k), idx.size()) : idx.size();
  std::vector<double> prob(k);
  // (logit - max) / T, not logit / T - max / T: for a tiny T (below ~1e-308) logit / T is +-inf and
  // inf - inf is NaN, which picked the least likely token. This way every token but the most likely
  // underflows to probability 0 and a tiny temperature is greedy.
  const double mx = logits[idx[0]];
  double sum = 0;
  for (size_t i = 0; i < k; ++i) sum += prob[i] = std::exp((double(logits[idx[i]]) - mx) / p.temperature);
  size_t keep = k;
  if (p.top_p < 1.0) {
    double acc = 0;
    for (size_t i = 0; i < k; ++i) {
      acc += prob[i] / sum;
      if (acc >= p.top_p) { keep = i + 1; break; }
    }
  }
  double total = 0;
  for (size_t i = 0; i < keep; ++i) total += prob[i];
  const double u = uniform_open(philox4x32(philox_key(p.seed, "generate"), step)[0]) * total;
  double acc = 0;
  for (size_t i = 0; i < keep; ++i)
    if ((acc += prob[i]) >= u) return idx[i];
  return idx[keep - 1];
}

}  // namespace cs
