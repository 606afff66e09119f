// Dtype conversion on the GPU, the CPU's pairs (cpu/cast.cpp): f32 -> bf16 / f16 rounds to nearest
// even (NaN stays NaN, f16 overflow gives inf), bf16 / f16 -> f32 exactly, the same dtype a copy;
// any other pair is a cs::Error naming both. 8 elements a thread (16-byte accesses of the narrow
// side) when both pointers are on 16 bytes.
#include "backend/cuda/common.cuh"
#include "backend/cuda/elementwise_kernels.cuh"
#include "backend/cuda/ops.h"

namespace cs::cuda {

void cast(Ctx& c, const Tensor& x, const Tensor& y) {
  check_arg("cast", "x", x, x.dtype, Device::CUDA);
  check_arg("cast", "y", y, y.dtype, Device::CUDA);
  check_cast_pair(x, y);
  const DType from = x.dtype, to = y.dtype;
  const int64_t n = x.numel();
  if (!n) return;
  if (from == to) {
    c.backend.copy(c, x, y);
    return;
  }
  with_float(from, [&](auto fx) {
    with_float(to, [&](auto fy) {
      using X = decltype(fx);
      using Y = decltype(fy);
      vec::with_width<8>(vec::aligned16(x.data, y.data), [&](auto w) {
        constexpr int N = decltype(w)::value;
        CS_LAUNCH(blocks_for(n / N + 1, 256, 8192), 256, 0, stream(c), ew::cast<N, X, Y>)(ptr<X>(x), ptr<Y>(y), n);
      });
    });
  });
  check_launch("cast");
}

}  // namespace cs::cuda
