#include "train/evaluate.h"

#include <algorithm>
#include <vector>

#include "backend/host_copy.h"
#include "core/timer.h"

namespace cs {

namespace {
// The first `limit` tokens of document d (its sequences concatenated).
std::vector<int32_t> doc_tokens(const IndexedDataset& data, int64_t d, int64_t limit) {
  std::vector<int32_t> out;
  const auto& di = data.doc_index();
  for (int64_t s = di[size_t(d)]; s < di[size_t(d + 1)] && int64_t(out.size()) < limit; ++s) {
    const int64_t take = std::min<int64_t>(data.length(s), limit - int64_t(out.size()));
    const size_t at = out.size();
    out.resize(at + size_t(take));
    data.read(s, 0, take, out.data() + at);
  }
  return out;
}
}  // namespace

EvalSummary evaluate_documents(Model& model, const IndexedDataset& data, int64_t seq_length,
                               int64_t micro_batch, const std::function<void(const DocScore&)>& on_doc,
                               const IndexedDataset* mask) {
  EvalSummary sum;
  Timer timer;
  const int64_t n_docs = data.num_docs();
  std::vector<int32_t> tokens(size_t(micro_batch * seq_length)), targets(tokens.size());
  for (int64_t first = 0; first < n_docs; first += micro_batch) {
    const int64_t b = std::min(micro_batch, n_docs - first);
    std::vector<std::vector<int32_t>> docs, masks;
    int64_t t = 1;
    for (int64_t i = 0; i < b; ++i) {
      docs.push_back(doc_tokens(data, first + i, seq_length + 1));
      if (mask) masks.push_back(doc_tokens(*mask, first + i, seq_length + 1));
      t = std::max<int64_t>(t, int64_t(docs.back().size()) - 1);
    }
    std::fill(tokens.begin(), tokens.end(), 0);
    std::fill(targets.begin(), targets.end(), -1);
    std::vector<int64_t> counted(size_t(b), 0);
    for (int64_t i = 0; i < b; ++i) {
      const auto& d = docs[size_t(i)];
      for (int64_t j = 0; j + 1 < int64_t(d.size()); ++j) {
        const bool scored = !mask || masks[size_t(i)][size_t(j + 1)] == 1;
        tokens[size_t(i * t + j)] = d[size_t(j)];
        targets[size_t(i * t + j)] = scored ? d[size_t(j + 1)] : -1;
        counted[size_t(i)] += scored;
      }
    }
    model.forward(tokens.data(), targets.data(), b, t);
    const std::vector<float> losses = read_f32(model.ctx(), model.losses());  // the edge: per-document output
    for (int64_t i = 0; i < b; ++i) {
      const int64_t len = std::max<int64_t>(0, int64_t(docs[size_t(i)].size()) - 1), n = counted[size_t(i)];
      double nll = 0;  // an ignored target's loss is 0
      for (int64_t j = 0; j < len; ++j) nll += losses[size_t(i * t + j)];
      on_doc({first + i, n, n ? nll / double(n) : 0.0});
      sum.tokens += n;
      sum.total_nll += nll;
      ++sum.docs;
    }
  }
  sum.seconds = timer.seconds();
  return sum;
}

}  // namespace cs
