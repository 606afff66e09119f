// The first pass of the GPU's sum, sum of squares and count of zeros (reduce.cu): each of kThreads threads of a
// block sums a grid-strided set in double (f32: N = 4 consecutive elements per 16-byte load, the
// tail one by one), then the block adds its threads' partials in a fixed tree: the same bits every
// run. In a header so that tests/cuda_emu/ runs its text on the CPU; like elementwise_kernels.cuh,
// not to be included by attention_wgmma.cu (sm_90a).
#pragma once
#include <cstdint>
#include <type_traits>

#include "backend/cuda/elementwise_kernels.cuh"

namespace cs::cuda::red {

constexpr int kThreads = 256, kBlocks = 1024;

// The block's sum of v (blockDim.x a power of two, at most kBlocks), in a fixed tree.
__device__ __forceinline__ double block_sum_f64(double v, double* sh) {
  sh[threadIdx.x] = v;
  __syncthreads();
  for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
    __syncthreads();
  }
  return sh[0];
}

// What each element adds: itself, its square, or 1 when it is zero (-0 included, NaN not: as
// torch.count_nonzero counts).
enum class Fold { kSum, kSquares, kZeros };
template <Fold kFold>
__device__ __forceinline__ double fold(double v) {
  if constexpr (kFold == Fold::kSquares) return v * v;
  if constexpr (kFold == Fold::kZeros) return v == 0.0 ? 1.0 : 0.0;
  return v;
}

// partial[blockIdx.x] = this block's share of the fold of x, launched with kThreads threads.
template <int N, Fold kFold, typename T>
__global__ void partial_kernel(const T* x, int64_t n, double* partial) {
  __shared__ double sh[kThreads];
  double acc = 0.0;
  ew::flat<N>(n, [&](int64_t e, auto w) {
    constexpr int M = decltype(w)::value;
    double v[M];
    if constexpr (std::is_same_v<T, double>) {
      static_assert(N == 1);
      v[0] = x[e];
    } else {
      float f[M];
      vec::load(x + e, f);
#pragma unroll
      for (int k = 0; k < M; ++k) v[k] = f[k];
    }
#pragma unroll
    for (int k = 0; k < M; ++k) acc += fold<kFold>(v[k]);
  });
  const double s = block_sum_f64(acc, sh);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

}  // namespace cs::cuda::red
