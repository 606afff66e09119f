// AdamW on a flat fp32 range, operation for operation as torch.optim.AdamW (foreach=False):
// decoupled weight decay first, then the moment updates, then the bias-corrected step.
// p, g, m, v: same shape; g read scaled by grad_scale (clipping, fused); half (optional, bf16):
// the updated p rounded, in the same pass.
#include <cmath>

#include "backend/cpu/bf16.h"
#include "backend/cpu/ops.h"
#include "backend/op_check.h"

namespace cs::cpu {

void adamw_update(Ctx&, const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v,
                  double lr, double beta1, double beta2, double eps, double weight_decay,
                  int64_t step, float grad_scale, const Tensor& half) {
  check_f32_args("adamw_update", Device::CPU, {{"p", &p}, {"g", &g}, {"m", &m}, {"v", &v}});
  if (half.numel()) check_arg("adamw_update", "half", half, DType::BF16, Device::CPU);
  CS_CHECK(p.numel() == g.numel() && p.numel() == m.numel() && p.numel() == v.numel() && step >= 1);
  CS_CHECK(half.numel() == 0 || half.numel() == p.numel()) << half.shape.str() << " for " << p.shape.str();
  const int64_t n = p.numel();
  // Scalars as PyTorch forms them: in double (Python floats), rounded to fp32 by the kernel.
  const double bc1 = 1.0 - std::pow(beta1, double(step)), bc2 = 1.0 - std::pow(beta2, double(step));
  const float step_size = float(lr / bc1), bc2_sqrt = float(std::sqrt(bc2));
  const float decay = float(1.0 - lr * weight_decay), b1 = float(beta1), b2 = float(beta2);
  const float omb1 = float(1.0 - beta1), omb2 = float(1.0 - beta2), epsf = float(eps);
  float *pp = p.f32(), *mp = m.f32(), *vp = v.f32();
  const float* gp = g.f32();
  Bf16* hp = half.numel() ? data_as<Bf16>(half) : nullptr;
  // One element's update; returns the new p. Inlined into two loops (with and without the bf16
  // copy) so that each vectorises without a branch inside.
  auto update = [=](int64_t i) {
    const float gi = gp[i] * grad_scale;
    const float mi = mp[i] * b1 + gi * omb1, vi = vp[i] * b2 + omb2 * gi * gi;
    const float denom = std::sqrt(vi) / bc2_sqrt + epsf;
    mp[i] = mi;
    vp[i] = vi;
    return pp[i] = pp[i] * decay + (-step_size) * (mi / denom);
  };
  if (!hp) {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) update(i);
    return;
  }
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) store(hp + i, update(i));
}

}  // namespace cs::cpu
