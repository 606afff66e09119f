// The GPU's one-block-per-row kernels (vocab-parallel cross entropy, RMSNorm): each thread reads
// its share of a row N elements per access through vec.cuh (4 of f32: 16 bytes; the host takes
// N = 4 when the row length and the pointers allow, else 1), with fixed-order block reductions
// (warp_reduce.cuh): the same bits every run. In a header so that tests/cuda_emu/ runs their text
// on the CPU.
// Several .cu files instantiate the same kernels; the linker keeps one, which is right only while
// they are all built for the same architectures: not to be included by attention_wgmma.cu (sm_90a).
#pragma once
#include <cmath>
#include <cstdint>

#include "backend/cuda/vec.cuh"
#include "backend/cuda/warp_reduce.cuh"

namespace cs::cuda::per_row {

// fn(j) over this thread's chunks j = N * threadIdx.x, + N * blockDim.x, ... < d (d % N == 0).
template <int N, typename Fn>
__device__ __forceinline__ void each_chunk(int64_t d, Fn&& fn) {
  for (int64_t j = int64_t(threadIdx.x) * N; j < d; j += int64_t(blockDim.x) * N) fn(j);
}

// The column of target t in the shard [off, off + v), or -1.
__device__ __forceinline__ int64_t local_column(int32_t t, int64_t off, int64_t v) {
  const int64_t col = int64_t(t) - off;
  return t >= 0 && col >= 0 && col < v ? col : -1;
}

// Row blockIdx.x of the logits (n, v): lse = log sum exp in one pass (each thread keeps a running
// maximum and its sum of exponentials, rescaled when the maximum grows; the block combines them),
// and the target's logit when this shard holds its column (else 0).
template <int N>
__global__ void ce_forward(const float* logits, const int32_t* targets, int64_t v, int64_t off, float* lse,
                           float* target_logit) {
  __shared__ float scratch[32];
  const int64_t i = blockIdx.x;
  const float* z = logits + i * v;
  float m = -INFINITY, s = 0.f;
  each_chunk<N>(v, [&](int64_t j) {
    float x[N];
    vec::load(z + j, x);
#pragma unroll
    for (int k = 0; k < N; ++k) {
      if (x[k] > m) {
        s = s * __expf(m - x[k]) + 1.f;
        m = x[k];
      } else if (x[k] != -INFINITY) {  // exp(-inf) adds nothing (with m still -inf it would be exp(NaN))
        s += __expf(x[k] - m);         // a NaN logit lands here: the sum, and so lse, is NaN
      }
    }
  });
  const float mx = block_max(m, scratch);
  // A thread that saw nothing above -inf adds 0 (its s is 0); a NaN s stays NaN (NaN * 0).
  const float sum = block_sum(s == 0.f ? 0.f : s * __expf(m - mx), scratch);
  if (threadIdx.x == 0) {
    lse[i] = mx + logf(sum);
    const int64_t col = local_column(targets[i], off, v);
    target_logit[i] = col < 0 ? 0.f : z[col];
  }
}

// Rows [r0, r0 + gridDim.x): dz[(i - r0) * v + j] = scale * (softmax - onehot) of row i (0 for an
// ignored target).
template <int N, typename D>
__global__ void ce_backward(const float* logits, const float* lse, const int32_t* targets, int64_t v, int64_t off,
                            float scale, int64_t r0, D* dz) {
  const int64_t i = r0 + blockIdx.x;
  const float* z = logits + i * v;
  D* out = dz + (i - r0) * v;
  const int32_t tgt = targets[i];
  const float l = lse[i];
  const int64_t col = local_column(tgt, off, v);
  each_chunk<N>(v, [&](int64_t j) {
    float x[N];
    vec::load(z + j, x);
#pragma unroll
    for (int k = 0; k < N; ++k) x[k] = tgt < 0 ? 0.f : scale * __expf(x[k] - l) - (j + k == col ? scale : 0.f);
    vec::store(out + j, x);
  });
}

// A bf16 / f16 gradient written over the f32 logits themselves (dz == logits, v columns): half
// row i lies over the first or second half of f32 row i / 2, so rows [2^k, 2^(k+1)) write over f32
// rows [2^(k-1), 2^k), which earlier chunks have read and this one does not: fn(r0, r1) for those
// chunks, in order, each one launch with no row's write over another's read. Rows [0, min(n, 2))
// (their halves lie over f32 row 0, which both read) are the caller's, staged in f32 first.
template <typename Fn>
inline void half_in_place_chunks(int64_t n, Fn&& fn) {
  for (int64_t r0 = 2; r0 < n; r0 *= 2) fn(r0, 2 * r0 < n ? 2 * r0 : n);
}

// RMSNorm of row blockIdx.x of x (n, d): y = w * (x * rstd), rstd = 1 / sqrt(mean(x^2) + eps).
template <int N, typename W, typename Y>
__global__ void rmsnorm_forward(const float* x, const W* w, float eps, Y* y, float* rstd, int64_t d) {
  __shared__ float scratch[32];
  const int64_t i = blockIdx.x;
  const float* xi = x + i * d;
  float ss = 0.f;
  each_chunk<N>(d, [&](int64_t j) {
    float a[N];
    vec::load(xi + j, a);
#pragma unroll
    for (int k = 0; k < N; ++k) ss += a[k] * a[k];
  });
  ss = block_sum(ss, scratch);
  const float r = 1.f / sqrtf(ss / float(d) + eps);
  if (threadIdx.x == 0) rstd[i] = r;
  each_chunk<N>(d, [&](int64_t j) {
    float a[N], g[N];
    vec::load(xi + j, a);
    vec::load(w + j, g);
#pragma unroll
    for (int k = 0; k < N; ++k) a[k] = g[k] * (a[k] * r);
    vec::store(y + i * d + j, a);
  });
}

// dx of row blockIdx.x: with g = w * dy, dx = rstd * g - x * rstd^3 * mean(g * x) (= or +=).
template <int N, typename W>
__global__ void rmsnorm_dx(const float* x, const W* w, const float* rstd, const float* dy, float* dx, int64_t d,
                           bool accumulate) {
  __shared__ float scratch[32];
  const int64_t i = blockIdx.x;
  const float *xi = x + i * d, *dyi = dy + i * d;
  float* dxi = dx + i * d;
  const float r = rstd[i];
  float dot = 0.f;
  each_chunk<N>(d, [&](int64_t j) {
    float a[N], g[N], b[N];
    vec::load(xi + j, a);
    vec::load(w + j, g);
    vec::load(dyi + j, b);
#pragma unroll
    for (int k = 0; k < N; ++k) dot += g[k] * b[k] * a[k];
  });
  dot = block_sum(dot, scratch);
  const float cc = dot * r * r * r / float(d);
  each_chunk<N>(d, [&](int64_t j) {
    float a[N], g[N], b[N], o[N];
    vec::load(xi + j, a);
    vec::load(w + j, g);
    vec::load(dyi + j, b);
    if (accumulate) vec::load(dxi + j, o);
#pragma unroll
    for (int k = 0; k < N; ++k) {
      const float gk = r * g[k] * b[k] - cc * a[k];
      o[k] = accumulate ? o[k] + gk : gk;
    }
    vec::store(dxi + j, o);
  });
}

// partial[chunk, j] = sum over the chunk's rows (blockIdx.y: rows [y * rows, ...)) of dy * x *
// rstd, columns j = N * (blockIdx.x * blockDim.x + threadIdx.x) + [0, N).
template <int N>
__global__ void rmsnorm_dw_partial(const float* x, const float* rstd, const float* dy, int64_t n, int64_t d,
                                   int64_t rows, float* partial) {
  const int64_t j = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) * N;
  if (j >= d) return;
  const int64_t r0 = blockIdx.y * rows, r1 = r0 + rows < n ? r0 + rows : n;
  float acc[N] = {};
  for (int64_t i = r0; i < r1; ++i) {
    float a[N], b[N];
    vec::load(dy + i * d + j, b);
    vec::load(x + i * d + j, a);
    const float r = rstd[i];
#pragma unroll
    for (int k = 0; k < N; ++k) acc[k] += b[k] * a[k] * r;
  }
  vec::store(partial + blockIdx.y * d + j, acc);
}

}  // namespace cs::cuda::per_row
