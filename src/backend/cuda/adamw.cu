// AdamW over a flat fp32 range in one pass, operation for operation as torch.optim.AdamW and the
// CPU kernel (cpu/adamw.cpp): decay, moments, bias-corrected step; the scalars formed in double on
// the host as PyTorch forms them; g read scaled by grad_scale (clipping, fused). half (optional,
// bf16 or f16): the updated p rounded, in the same pass (the compute copy of the master weights
// under --bf16 / --fp16).
#include <cmath>

#include "backend/cuda/common.cuh"
#include "backend/cuda/ops.h"

namespace cs::cuda {

namespace {
struct AdamScalars {
  float step_size, bc2_sqrt, decay, b1, b2, omb1, omb2, eps, grad_scale;
};

template <typename H>
__global__ void adamw_kernel(float* p, const float* g, float* m, float* v, H* half, int64_t n, AdamScalars s) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float gi = g[i] * s.grad_scale;
    const float mi = m[i] * s.b1 + gi * s.omb1, vi = v[i] * s.b2 + s.omb2 * gi * gi;
    const float denom = sqrtf(vi) / s.bc2_sqrt + s.eps;
    m[i] = mi;
    v[i] = vi;
    const float pi = p[i] * s.decay + (-s.step_size) * (mi / denom);
    p[i] = pi;
    if (half) st(half + i, pi);
  }
}
}  // namespace

void adamw_update(Ctx& c, const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, double lr,
                  double beta1, double beta2, double eps, double weight_decay, int64_t step, float grad_scale,
                  const Tensor& half) {
  check_f32_args("adamw_update", Device::CUDA, {{"p", &p}, {"g", &g}, {"m", &m}, {"v", &v}});
  if (half.numel()) {
    check_float("adamw_update", "half", half, Device::CUDA);
    if (half.dtype == DType::F32) check_arg("adamw_update", "half", half, DType::BF16, Device::CUDA);
  }
  CS_CHECK(p.numel() == g.numel() && p.numel() == m.numel() && p.numel() == v.numel() && step >= 1);
  CS_CHECK(half.numel() == 0 || half.numel() == p.numel()) << half.shape.str() << " for " << p.shape.str();
  const int64_t n = p.numel();
  if (!n) return;
  const double bc1 = 1.0 - std::pow(beta1, double(step)), bc2 = 1.0 - std::pow(beta2, double(step));
  const AdamScalars s{float(lr / bc1), float(std::sqrt(bc2)), float(1.0 - lr * weight_decay), float(beta1),
                      float(beta2), float(1.0 - beta1), float(1.0 - beta2), float(eps), grad_scale};
  const unsigned blocks = blocks_for(n, 256, 8192);
  if (!half.numel())
    adamw_kernel<bf16><<<blocks, 256, 0, stream(c)>>>(ptr<float>(p), ptr<float>(g), ptr<float>(m), ptr<float>(v),
                                                      nullptr, n, s);
  else
    with_float(half.dtype, [&](auto h) {
      using H = decltype(h);
      adamw_kernel<H><<<blocks, 256, 0, stream(c)>>>(ptr<float>(p), ptr<float>(g), ptr<float>(m), ptr<float>(v),
                                                     ptr<H>(half), n, s);
    });
  check_launch("adamw_update");
}

}  // namespace cs::cuda
