// Cross entropy over the vocabulary, per row, vocab-parallel (Megatron's
// _VocabParallelCrossEntropy): each rank holds the logits of its vocabulary columns; step 1 gives
// its log-sum-exp and the target's logit when the target is one of its columns, step 2 combines
// every rank's parts (loss = logsumexp(z) - z[target]); target -1 is ignored (loss 0, gradient 0).
// The backward writes scale * (softmax(z) - onehot(target)) over the rank's columns and may
// overwrite the logits in place (llm.c does the same to avoid a second (N, V) buffer). Both passes
// over a row are vector code (fast_exp.h; the sum of exponentials is kept in double). Under --bf16
// the gradient is written in bf16, over the logits' own memory too (see cross_entropy_backward).
// logits, dlogits: (N, V); targets: (N) i32; lse, target_logit, losses: (N); lse_parts: (P, N).
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/bf16.h"
#include "backend/cpu/fast_exp.h"
#include "backend/cpu/ops.h"
#include "backend/op_check.h"

namespace cs::cpu {

namespace {
// The target's column in this rank's slice, or -1 when ignored or held by another rank.
inline int64_t local_column(int32_t target, int64_t vocab_offset, int64_t v) {
  const int64_t col = int64_t(target) - vocab_offset;
  return target >= 0 && col >= 0 && col < v ? col : -1;
}

// log sum_j exp(z[j]) of one row: its max, then the sum of exponentials in double, over 16
// explicit lanes (each lane a fixed set of columns, the lanes combined in order): a summation
// order fixed by the code, not by the compiler's vector width, and vector code (with
// -fno-trapping-math, src/backend/CMakeLists.txt, fast_exp's clamps become selects).
constexpr int kLanes = 16;
float row_lse(const float* z, int64_t v) {
  const int64_t vb = v / kLanes * kLanes;
  const float mx = max_of(z, v, -INFINITY);
  double s[kLanes] = {};  // double: the sum runs over 64k terms for the real vocabulary
  for (int64_t j = 0; j < vb; j += kLanes)
    for (int l = 0; l < kLanes; ++l) s[l] += double(fast_exp(z[j + l] - mx));
  double sum = 0.0;
  for (int l = 0; l < kLanes; ++l) sum += s[l];
  for (int64_t j = vb; j < v; ++j) sum += double(fast_exp(z[j] - mx));
  return mx + float(std::log(sum));
}
}  // namespace

void cross_entropy_forward(Ctx&, const Tensor& logits, const Tensor& targets, int64_t vocab_offset,
                           const Tensor& lse, const Tensor& target_logit) {
  check_f32("cross_entropy_forward", "logits", logits, Device::CPU);
  check_arg("cross_entropy_forward", "targets", targets, DType::I32, Device::CPU);
  check_f32_args("cross_entropy_forward", Device::CPU, {{"lse", &lse}, {"target_logit", &target_logit}});
  const int64_t n = targets.numel(), v = logits.size(-1);
  CS_CHECK(logits.numel() == n * v && lse.numel() == n && target_logit.numel() == n && vocab_offset >= 0);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float* z = logits.f32() + i * v;
    lse.f32()[i] = row_lse(z, v);
    const int64_t col = local_column(targets.i32()[i], vocab_offset, v);
    target_logit.f32()[i] = col < 0 ? 0.f : z[col];
  }
}

void cross_entropy_combine(Ctx&, const Tensor& lse_parts, const Tensor& target_logit, const Tensor& targets,
                           const Tensor& losses, const Tensor& lse) {
  check_f32_args("cross_entropy_combine", Device::CPU,
                 {{"lse_parts", &lse_parts}, {"target_logit", &target_logit}, {"losses", &losses}, {"lse", &lse}});
  check_arg("cross_entropy_combine", "targets", targets, DType::I32, Device::CPU);
  const int64_t n = targets.numel(), p = n ? lse_parts.numel() / n : 0;
  CS_CHECK(p >= 1 && lse_parts.numel() == p * n && target_logit.numel() == n && losses.numel() == n &&
           lse.numel() == n)
      << lse_parts.shape.str() << " parts of " << n;
  const float* parts = lse_parts.f32();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    float l = parts[i];
    if (p > 1) {  // logsumexp of the parts; one part is kept as it is (bit-identical to one rank)
      float mx = -INFINITY;
      for (int64_t r = 0; r < p; ++r) mx = std::max(mx, parts[r * n + i]);
      double s = 0.0;
      for (int64_t r = 0; r < p; ++r) s += std::exp(double(parts[r * n + i] - mx));
      l = mx + float(std::log(s));
    }
    lse.f32()[i] = l;
    losses.f32()[i] = targets.i32()[i] < 0 ? 0.f : l - target_logit.f32()[i];
  }
}

namespace {
// Row i's gradient, scale * (softmax(z) - onehot(target)), into dz (f32); dz may be z.
void grad_row(const Tensor& logits, const Tensor& lse, const Tensor& targets, int64_t vocab_offset, float scale,
              int64_t i, float* dz) {
  const int64_t v = logits.size(-1);
  const float* z = logits.f32() + i * v;
  const int32_t tgt = targets.i32()[i];
  if (tgt < 0) {
    for (int64_t j = 0; j < v; ++j) dz[j] = 0.f;
    return;
  }
  const float l = lse.f32()[i];
#pragma omp simd
  for (int64_t j = 0; j < v; ++j) dz[j] = scale * fast_exp(z[j] - l);
  const int64_t col = local_column(tgt, vocab_offset, v);
  if (col >= 0) dz[col] -= scale;
}
}  // namespace

void cross_entropy_backward(Ctx&, const Tensor& logits, const Tensor& lse, const Tensor& targets,
                            int64_t vocab_offset, float scale, const Tensor& dlogits) {
  check_f32_args("cross_entropy_backward", Device::CPU, {{"logits", &logits}, {"lse", &lse}});
  check_arg("cross_entropy_backward", "targets", targets, DType::I32, Device::CPU);
  check_f32_or_bf16("cross_entropy_backward", "dlogits", dlogits, Device::CPU);
  const int64_t n = targets.numel(), v = logits.size(-1);
  CS_CHECK(dlogits.numel() == n * v && vocab_offset >= 0);
  if (dlogits.dtype == DType::F32) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) grad_row(logits, lse, targets, vocab_offset, scale, i, dlogits.f32() + i * v);
    return;
  }
  // bf16 (--bf16: the gradient only feeds the head's two GEMMs), possibly in the logits' own
  // memory: blocks of rows go to f32 staging first, then to bf16 row i at bytes [2iV, 2(i+1)V),
  // which lie within f32 rows <= i, all read by then (this block's or earlier ones); rows of later
  // blocks are never touched. The values are the f32 path's, rounded to nearest even.
  constexpr int64_t kBlock = 64;
  thread_local std::vector<float> staging;
  staging.resize(size_t(std::min(n, kBlock) * v));
  Bf16* out = data_as<Bf16>(dlogits);
  for (int64_t r0 = 0; r0 < n; r0 += kBlock) {
    const int64_t r1 = std::min(n, r0 + kBlock);
    float* st = staging.data();
#pragma omp parallel for schedule(static)
    for (int64_t i = r0; i < r1; ++i) grad_row(logits, lse, targets, vocab_offset, scale, i, st + (i - r0) * v);
#pragma omp parallel for schedule(static)
    for (int64_t i = r0; i < r1; ++i) to_bf16(st + (i - r0) * v, out + i * v, v);
  }
}

}  // namespace cs::cpu
