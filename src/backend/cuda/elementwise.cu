// add_inplace (y += x) and scale (x *= alpha), f32: elementwise_kernels.cuh's flat kernels, 4
// elements a thread (16-byte accesses) where the pointers allow (the residual adds and the
// gradient scaling are memory-bound), the tail one by one.
#include "backend/cuda/common.cuh"
#include "backend/cuda/elementwise_kernels.cuh"
#include "backend/cuda/ops.h"

namespace cs::cuda {

void add_inplace(Ctx& c, const Tensor& y, const Tensor& x) {
  check_f32("add_inplace", "y", y, Device::CUDA);
  check_f32("add_inplace", "x", x, Device::CUDA);
  CS_CHECK(y.numel() == x.numel()) << y.shape.str() << x.shape.str();
  const int64_t n = y.numel();
  if (!n) return;
  vec::with_width<4>(vec::aligned16(y.data, x.data), [&](auto w) {
    constexpr int N = decltype(w)::value;
    CS_LAUNCH(blocks_for(n / N + 1, 256, 8192), 256, 0, stream(c), ew::add<N>)(ptr<float>(y), ptr<float>(x), n);
  });
  check_launch("add_inplace");
}

void scale(Ctx& c, const Tensor& x, float alpha) {
  check_f32("scale", "x", x, Device::CUDA);
  const int64_t n = x.numel();
  if (!n) return;
  vec::with_width<4>(vec::aligned16(x.data), [&](auto w) {
    constexpr int N = decltype(w)::value;
    CS_LAUNCH(blocks_for(n / N + 1, 256, 8192), 256, 0, stream(c), ew::scale<N>)(ptr<float>(x), alpha, n);
  });
  check_launch("scale");
}

}  // namespace cs::cuda
