// sum, sum of squares and count of zeros of a tensor into an F64 [1] device tensor, accumulated in double in an
// order fixed by the element count (and whether x starts on 16 bytes) alone: kBlocks x kThreads
// threads each sum a grid-strided set (of f32: 4 consecutive elements at a time, 16-byte loads),
// each block adds its threads' partials in a fixed tree, one last block adds the block partials
// (in the context's workspace) in a fixed tree. The same bits every run; no atomics. (The order
// differs from the CPU's, so the last bits of the two backends' results may differ.) inf and nan
// propagate. x: f32 (sum also f64: partial sums). The first pass is reduce_kernels.cuh's.
#include <type_traits>

#include "backend/cuda/common.cuh"
#include "backend/cuda/reduce_kernels.cuh"
#include "backend/cuda/ops.h"

namespace cs::cuda {

namespace {
using red::Fold;
using red::kBlocks;
using red::kThreads;

__global__ void final_kernel(const double* partial, int n, double* out) {
  __shared__ double sh[kBlocks];
  const double s = red::block_sum_f64(int(threadIdx.x) < n ? partial[threadIdx.x] : 0.0, sh);
  if (threadIdx.x == 0) *out = s;
}

template <Fold kFold, typename T>
void reduce(Ctx& c, const char* op, const Tensor& x, const Tensor& out) {
  check_arg(op, "out", out, DType::F64, Device::CUDA);
  CS_CHECK(out.numel() == 1) << op << " out " << out.shape.str() << ": expected [1]";
  const int64_t n = x.numel();
  const int blocks = int(blocks_for(n / 4 + 1, kThreads, kBlocks));
  double* partial = ptr<double>(c.workspace);
  constexpr bool kFloat = std::is_same_v<T, float>;
  vec::with_width<kFloat ? 4 : 1>(kFloat && vec::aligned16(x.data), [&](auto w) {
    CS_LAUNCH(blocks, kThreads, 0, stream(c), red::partial_kernel<decltype(w)::value, kFold, T>)(ptr<T>(x), n, partial);
  });
  check_launch(op);
  CS_LAUNCH(1, kBlocks, 0, stream(c), final_kernel)(partial, blocks, ptr<double>(out));
  check_launch(op);
}
}  // namespace

void sum(Ctx& c, const Tensor& x, const Tensor& out) {
  if (x.dtype == DType::F64 && x.device == Device::CUDA) {
    reduce<Fold::kSum, double>(c, "sum", x, out);
    return;
  }
  check_f32("sum", "x", x, Device::CUDA);
  reduce<Fold::kSum, float>(c, "sum", x, out);
}

void sum_squares(Ctx& c, const Tensor& x, const Tensor& out) {
  check_f32("sum_squares", "x", x, Device::CUDA);
  reduce<Fold::kSquares, float>(c, "sum_squares", x, out);
}

void count_zeros(Ctx& c, const Tensor& x, const Tensor& out) {
  check_f32("count_zeros", "x", x, Device::CUDA);
  reduce<Fold::kZeros, float>(c, "count_zeros", x, out);
}

}  // namespace cs::cuda
