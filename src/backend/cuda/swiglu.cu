// SwiGLU on the GPU (cpu/swiglu.cpp's contract): out = silu(gate) * up over gu = [gate | up]
// (N, 2F); backward d silu(g)/dg = s * (1 + g * (1 - s)), s = sigmoid(g). The kernels are
// elementwise_kernels.cuh's: 8 columns a thread (16-byte accesses of bf16 / f16) when F and the
// pointers allow, else one. dgu may alias gu (same dtype). gu, out, dgu: f32|bf16|f16; dout f32.
#include "backend/cuda/common.cuh"
#include "backend/cuda/elementwise_kernels.cuh"
#include "backend/cuda/ops.h"

namespace cs::cuda {

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
      vec::with_width<8>(f % 8 == 0 && vec::aligned16(gu.data, out.data), [&](auto w) {
        constexpr int N = decltype(w)::value;
        const RowsLaunch l = rows_launch(n, f / N);
        CS_LAUNCH(l.grid, l.threads, 0, stream(c), ew::swiglu_fwd<N, G, O>)(ptr<G>(gu), ptr<O>(out), n, f);
      });
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
      vec::with_width<8>(f % 8 == 0 && vec::aligned16(gu.data, dout.data, dgu.data), [&](auto w) {
        constexpr int N = decltype(w)::value;
        const RowsLaunch l = rows_launch(n, f / N);
        CS_LAUNCH(l.grid, l.threads, 0, stream(c), ew::swiglu_bwd<N, G, D>)(ptr<G>(gu), ptr<float>(dout), ptr<D>(dgu), n, f);
      });
    });
  });
  check_launch("swiglu_backward");
}

}  // namespace cs::cuda
