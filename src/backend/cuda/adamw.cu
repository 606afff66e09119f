// AdamW over a flat fp32 range in one pass, operation for operation as torch.optim.AdamW and the
// CPU kernel (cpu/adamw.cpp): decay, moments, bias-corrected step; the scalars formed in double on
// the host as PyTorch forms them; g read scaled by grad_scale (clipping, fused). half (optional,
// bf16 or f16): the updated p rounded, in the same pass (the compute copy of the master weights
// under --bf16 / --fp16). 4 elements a thread (16-byte accesses of the f32 buffers) when every
// pointer is on 16 bytes (elementwise_kernels.cuh).
#include <cmath>

#include "backend/cuda/common.cuh"
#include "backend/cuda/elementwise_kernels.cuh"
#include "backend/cuda/ops.h"

namespace cs::cuda {

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
  const ew::AdamScalars s{float(lr / bc1), float(std::sqrt(bc2)), float(1.0 - lr * weight_decay), float(beta1),
                          float(beta2), float(1.0 - beta1), float(1.0 - beta2), float(eps), grad_scale};
  const bool wide = vec::aligned16(p.data, g.data, m.data, v.data, half.data);  // half: null or a buffer
  auto launch = [&](auto h) {
    using H = decltype(h);
    vec::with_width<4>(wide, [&](auto w) {
      constexpr int N = decltype(w)::value;
      CS_LAUNCH(blocks_for(n / N + 1, 256, 8192), 256, 0, stream(c), ew::adamw<N, H>)(
          ptr<float>(p), ptr<float>(g), ptr<float>(m), ptr<float>(v), half.numel() ? ptr<H>(half) : nullptr, n, s);
    });
  };
  if (!half.numel())
    launch(bf16{});
  else
    with_float(half.dtype, launch);
  check_launch("adamw_update");
}

}  // namespace cs::cuda
