// RMSNorm on the GPU (the CPU's contract, cpu/rmsnorm.cpp): one block per row, statistics in fp32.
// Backward: with g = w * dy, dx = rstd * g - x * rstd^3 * mean(g * x) (= or +=); dw += sum_n dy * x
// * rstd in two fixed-order passes (row chunks' partial sums in the workspace, then the chunks in
// order per column): the same bits every run, no atomics. w and y: f32|bf16|f16; the rest f32.
// The kernels are row_kernels.cuh's, 4 columns a thread (16-byte accesses of f32) when the width
// and the pointers allow.
#include "backend/cuda/common.cuh"
#include "backend/cuda/row_kernels.cuh"
#include "backend/cuda/ops.h"

namespace cs::cuda {

namespace {
constexpr int kThreads = 256;

__global__ void rmsnorm_dw_final(const float* partial, int64_t chunks, int64_t d, float* dw) {
  const int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (j >= d) return;
  float acc = 0.f;
  for (int64_t k = 0; k < chunks; ++k) acc += partial[k * d + j];
  dw[j] += acc;
}
}  // namespace

void rmsnorm_forward(Ctx& c, const Tensor& x, const Tensor& w, float eps, const Tensor& y, const Tensor& rstd) {
  check_f32_args("rmsnorm_forward", Device::CUDA, {{"x", &x}, {"rstd", &rstd}});
  check_float("rmsnorm_forward", "w", w, Device::CUDA);
  check_float("rmsnorm_forward", "y", y, Device::CUDA);
  const int64_t d = w.numel(), n = d ? x.numel() / d : 0;
  CS_CHECK(x.numel() == n * d && y.numel() == n * d && rstd.numel() == n);
  if (!n) return;
  with_float(w.dtype, [&](auto tw) {
    with_float(y.dtype, [&](auto ty) {
      using W = decltype(tw);
      using Y = decltype(ty);
      vec::with_width<4>(d % 4 == 0 && vec::aligned16(x.data, w.data, y.data), [&](auto k) {
        CS_LAUNCH(unsigned(n), kThreads, 0, stream(c), per_row::rmsnorm_forward<decltype(k)::value, W, Y>)(
            ptr<float>(x), ptr<W>(w), eps, ptr<Y>(y), ptr<float>(rstd), d);
      });
    });
  });
  check_launch("rmsnorm_forward");
}

void rmsnorm_backward(Ctx& c, const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dy,
                      const Tensor& dx, const Tensor& dw, bool accumulate_dx) {
  check_f32_args("rmsnorm_backward", Device::CUDA,
                 {{"x", &x}, {"rstd", &rstd}, {"dy", &dy}, {"dx", &dx}, {"dw", &dw}});
  check_float("rmsnorm_backward", "w", w, Device::CUDA);
  const int64_t d = w.numel(), n = d ? x.numel() / d : 0;
  CS_CHECK(dy.numel() == n * d && dx.numel() == n * d && dw.numel() == d);
  if (!n) return;
  // dw's partials first: dx may alias dy (it does not in the model, but nothing here forbids it).
  // Chunks of rows sized so the partials fit the workspace; the chunking depends on n and d only.
  int64_t rows = 64;
  while (((n + rows - 1) / rows) * d * int64_t(sizeof(float)) > int64_t(c.workspace.nbytes()) ||
         (n + rows - 1) / rows > 65535)  // the chunks are grid.y
    rows *= 2;
  const int64_t chunks = (n + rows - 1) / rows;
  float* partial = ptr<float>(c.workspace);
  const bool wide = d % 4 == 0 && vec::aligned16(x.data, w.data, dy.data, dx.data, partial);
  vec::with_width<4>(wide, [&](auto k) {
    constexpr int N = decltype(k)::value;
    CS_LAUNCH(dim3(blocks_for(d / N, 128), unsigned(chunks)), 128, 0, stream(c), per_row::rmsnorm_dw_partial<N>)(
        ptr<float>(x), ptr<float>(rstd), ptr<float>(dy), n, d, rows, partial);
  });
  check_launch("rmsnorm_backward (dw)");
  CS_LAUNCH(blocks_for(d, 128), 128, 0, stream(c), rmsnorm_dw_final)(partial, chunks, d, ptr<float>(dw));
  check_launch("rmsnorm_backward (dw)");
  with_float(w.dtype, [&](auto tw) {
    using W = decltype(tw);
    vec::with_width<4>(wide, [&](auto k) {
      CS_LAUNCH(unsigned(n), kThreads, 0, stream(c), per_row::rmsnorm_dx<decltype(k)::value, W>)(
          ptr<float>(x), ptr<W>(w), ptr<float>(rstd), ptr<float>(dy), ptr<float>(dx), d, accumulate_dx);
    });
  });
  check_launch("rmsnorm_backward");
}

}  // namespace cs::cuda
