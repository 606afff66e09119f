// Cross entropy over the vocabulary, per row: loss = logsumexp(z) - z[target]; target -1 is
// ignored (loss 0, gradient 0). The backward writes scale * (softmax(z) - onehot(target)) and may
// overwrite the logits in place (llm.c does the same to avoid a second (N, V) buffer).
// logits, dlogits: (N, V); targets: (N) i32; losses, lse: (N).
#include <cmath>

#include "backend/cpu/ops.h"
#include "backend/op_check.h"

namespace cs::cpu {

void cross_entropy_forward(Ctx&, const Tensor& logits, const Tensor& targets,
                           const Tensor& losses, const Tensor& lse) {
  check_f32("cross_entropy_forward", "logits", logits, Device::CPU);
  check_arg("cross_entropy_forward", "targets", targets, DType::I32, Device::CPU);
  check_f32_args("cross_entropy_forward", Device::CPU, {{"losses", &losses}, {"lse", &lse}});
  const int64_t n = targets.numel(), v = logits.size(-1);
  CS_CHECK(logits.numel() == n * v && losses.numel() == n && lse.numel() == n);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float* z = logits.f32() + i * v;
    float mx = -INFINITY;
    for (int64_t j = 0; j < v; ++j) mx = std::max(mx, z[j]);
    double s = 0.0;  // double: the sum runs over 64k terms for the real vocabulary
    for (int64_t j = 0; j < v; ++j) s += std::exp(double(z[j] - mx));
    const float l = mx + float(std::log(s));
    lse.f32()[i] = l;
    const int32_t tgt = targets.i32()[i];
    CS_CHECK(tgt >= -1 && tgt < v) << "target " << tgt << " outside vocab " << v;
    losses.f32()[i] = tgt < 0 ? 0.f : l - z[tgt];
  }
}

void cross_entropy_backward(Ctx&, const Tensor& logits, const Tensor& lse,
                            const Tensor& targets, float scale, const Tensor& dlogits) {
  check_f32_args("cross_entropy_backward", Device::CPU, {{"logits", &logits}, {"lse", &lse}});
  check_arg("cross_entropy_backward", "targets", targets, DType::I32, Device::CPU);
  check_f32("cross_entropy_backward", "dlogits", dlogits, Device::CPU);
  const int64_t n = targets.numel(), v = logits.size(-1);
  CS_CHECK(dlogits.numel() == n * v);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float* z = logits.f32() + i * v;
    float* dz = dlogits.f32() + i * v;
    const int32_t tgt = targets.i32()[i];
    if (tgt < 0) {
      for (int64_t j = 0; j < v; ++j) dz[j] = 0.f;
      continue;
    }
    const float l = lse.f32()[i];
#pragma omp simd
    for (int64_t j = 0; j < v; ++j) dz[j] = scale * std::exp(z[j] - l);
    dz[tgt] -= scale;
  }
}

}  // namespace cs::cpu
