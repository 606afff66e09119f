// SwiGLU on the GPU (cpu/swiglu.cpp's contract): out = silu(gate) * up over gu = [gate | up]
// (N, 2F); backward d silu(g)/dg = s * (1 + g * (1 - s)), s = sigmoid(g). One thread per (n, j):
// it reads gate and up before writing either gradient, so dgu may alias gu (same dtype).
// gu, out, dgu: f32|bf16|f16; dout f32.
#include "backend/cuda/common.cuh"
#include "backend/cuda/ops.h"

namespace cs::cuda {

namespace {
template <typename G, typename O>
__global__ void swiglu_fwd_kernel(const G* gu, O* out, int64_t n, int64_t f) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n * f; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = e / f, j = e % f;
    const float g = ld(gu + i * 2 * f + j), u = ld(gu + i * 2 * f + f + j);
    st(out + e, g / (1.f + __expf(-g)) * u);
  }
}

template <typename G, typename D>
__global__ void swiglu_bwd_kernel(const G* gu, const float* dout, D* dgu, int64_t n, int64_t f) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n * f; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = e / f, j = e % f;
    const float g = ld(gu + i * 2 * f + j), u = ld(gu + i * 2 * f + f + j), d = dout[e];
    const float s = 1.f / (1.f + __expf(-g));
    st(dgu + i * 2 * f + j, d * u * s * (1.f + g * (1.f - s)));
    st(dgu + i * 2 * f + f + j, d * g * s);
  }
}
}  // namespace

void swiglu_forward(Ctx& c, const Tensor& gu, const Tensor& out) {
  check_float("swiglu_forward", "gu", gu, Device::CUDA);
  check_float("swiglu_forward", "out", out, Device::CUDA);
  const int64_t f = out.size(-1), n = f ? out.numel() / f : 0;
  CS_CHECK(gu.numel() == 2 * n * f) << gu.shape.str() << out.shape.str();
  if (!n) return;
  with_float(gu.dtype, [&](auto tg) {
    with_float(out.dtype, [&](auto to) {
      using G = decltype(tg);
      using O = decltype(to);
      swiglu_fwd_kernel<G, O><<<blocks_for(n * f, 256, 16384), 256, 0, stream(c)>>>(ptr<G>(gu), ptr<O>(out), n, f);
    });
  });
  check_launch("swiglu_forward");
}

void swiglu_backward(Ctx& c, const Tensor& gu, const Tensor& dout, const Tensor& dgu) {
  check_float("swiglu_backward", "gu", gu, Device::CUDA);
  check_f32("swiglu_backward", "dout", dout, Device::CUDA);
  check_float("swiglu_backward", "dgu", dgu, Device::CUDA);
  const int64_t f = dout.size(-1), n = f ? dout.numel() / f : 0;
  CS_CHECK(gu.numel() == 2 * n * f && dgu.numel() == 2 * n * f);
  CS_CHECK(gu.data != dgu.data || gu.dtype == dgu.dtype) << "swiglu_backward: dgu aliases gu in another dtype";
  if (!n) return;
  with_float(gu.dtype, [&](auto tg) {
    with_float(dgu.dtype, [&](auto td) {
      using G = decltype(tg);
      using D = decltype(td);
      swiglu_bwd_kernel<G, D><<<blocks_for(n * f, 256, 16384), 256, 0, stream(c)>>>(ptr<G>(gu), ptr<float>(dout),
                                                                                     ptr<D>(dgu), n, f);
    });
  });
  check_launch("swiglu_backward");
}

}  // namespace cs::cuda
