// The element-wise, memory-bound kernels of the CUDA backend (SwiGLU, dtype casts, the head split
// and merge, AdamW): each thread moves N consecutive elements per access through vec.cuh (16
// bytes at a time where the host found the sizes and pointers aligned, else N = 1), and the
// arithmetic of each element is the scalar formula, so both paths give the same bits. Row-shaped
// ones take rows on the grid's y (grid-stride) and columns on x, so no 64-bit division per element.
// In a header so that tests/cuda_emu/ runs their text on the CPU.
#pragma once
#include <cstdint>

#include "backend/cuda/vec.cuh"

namespace cs::cuda::ew {

// fn(i, j) for rows i < n (blockIdx.y, grid-stride) and column chunks j = 0, N, ... < f (threads
// of the grid's x, grid-stride).
template <int N, typename Fn>
__device__ __forceinline__ void rows_cols(int64_t n, int64_t f, Fn&& fn) {
  for (int64_t i = blockIdx.y; i < n; i += gridDim.y)
    for (int64_t j = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) * N; j < f; j += int64_t(gridDim.x) * blockDim.x * N)
      fn(i, j);
}

// fn(e, vec::Width<N>) over chunks e = 0, N, ... < n - n % N, then fn(e, vec::Width<1>) over the tail.
template <int N, typename Fn>
__device__ __forceinline__ void flat(int64_t n, Fn&& fn) {
  const int64_t full = n / N * N, first = blockIdx.x * int64_t(blockDim.x) + threadIdx.x,
                stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = first * N; e < full; e += stride * N) fn(e, vec::Width<N>{});
  for (int64_t e = full + first; e < n; e += stride) fn(e, vec::Width<1>{});
}

// out[i, j] = silu(gate) * up over gu = [gate | up] (n, 2f); f % N == 0.
template <int N, typename G, typename O>
__global__ void swiglu_fwd(const G* gu, O* out, int64_t n, int64_t f) {
  rows_cols<N>(n, f, [&](int64_t i, int64_t j) {
    float g[N], u[N], o[N];
    vec::load(gu + i * 2 * f + j, g);
    vec::load(gu + i * 2 * f + f + j, u);
#pragma unroll
    for (int k = 0; k < N; ++k) o[k] = g[k] / (1.f + __expf(-g[k])) * u[k];
    vec::store(out + i * f + j, o);
  });
}

// d silu(g)/dg = s * (1 + g * (1 - s)), s = sigmoid(g). A thread reads its gate and up chunks
// before writing either gradient, so dgu may alias gu (same dtype).
template <int N, typename G, typename D>
__global__ void swiglu_bwd(const G* gu, const float* dout, D* dgu, int64_t n, int64_t f) {
  rows_cols<N>(n, f, [&](int64_t i, int64_t j) {
    float g[N], u[N], d[N], dg[N], du[N];
    vec::load(gu + i * 2 * f + j, g);
    vec::load(gu + i * 2 * f + f + j, u);
    vec::load(dout + i * f + j, d);
#pragma unroll
    for (int k = 0; k < N; ++k) {
      const float s = 1.f / (1.f + __expf(-g[k]));
      dg[k] = d[k] * u[k] * s * (1.f + g[k] * (1.f - s));
      du[k] = d[k] * g[k] * s;
    }
    vec::store(dgu + i * 2 * f + j, dg);
    vec::store(dgu + i * 2 * f + f + j, du);
  });
}

// Head split (kSplit: tok -> head) or merge (head -> tok) between tok (B, T, c) at columns
// [col0, col0 + h * hd) and head (B, H, T, hd); rows = B * T tokens; hd % N == 0.
template <int N, bool kSplit, typename TokT, typename HeadT>
__global__ void permute(TokT* tok, HeadT* head, int64_t rows, int64_t h, int64_t t, int64_t hd, int64_t c,
                        int64_t col0) {
  rows_cols<N>(rows, h * hd, [&](int64_t r, int64_t j) {
    const int hi = int(j) / int(hd), i = int(j) - hi * int(hd);  // h * hd < 2^31 (checked by the host)
    const int64_t bi = r / t, ti = r - bi * t;
    TokT* tp = tok + r * c + col0 + j;
    HeadT* hp = head + ((bi * h + hi) * t + ti) * hd + i;
    float x[N];
    if (kSplit) {
      vec::load(tp, x);
      vec::store(hp, x);
    } else {
      vec::load(hp, x);
      vec::store(tp, x);
    }
  });
}

// y = x converted (widened exactly, or rounded to nearest even).
template <int N, typename X, typename Y>
__global__ void cast(const X* x, Y* y, int64_t n) {
  flat<N>(n, [&](int64_t e, auto w) {
    float v[decltype(w)::value];
    vec::load(x + e, v);
    vec::store(y + e, v);
  });
}

// AdamW's scalars, formed in double on the host as PyTorch forms them.
struct AdamScalars {
  float step_size, bc2_sqrt, decay, b1, b2, omb1, omb2, eps, grad_scale;
};

// One AdamW step over p, g, m, v (f32), operation for operation as torch.optim.AdamW; half
// (optional): the updated p rounded (the compute copy).
template <int N, typename H>
__global__ void adamw(float* p, const float* g, float* m, float* v, H* half, int64_t n, AdamScalars s) {
  flat<N>(n, [&](int64_t e, auto w) {
    constexpr int M = decltype(w)::value;
    float pp[M], gg[M], mm[M], vv[M];
    vec::load(p + e, pp);
    vec::load(g + e, gg);
    vec::load(m + e, mm);
    vec::load(v + e, vv);
#pragma unroll
    for (int k = 0; k < M; ++k) {
      const float gi = gg[k] * s.grad_scale;
      mm[k] = mm[k] * s.b1 + gi * s.omb1;
      vv[k] = vv[k] * s.b2 + s.omb2 * gi * gi;
      const float denom = sqrtf(vv[k]) / s.bc2_sqrt + s.eps;
      pp[k] = pp[k] * s.decay + (-s.step_size) * (mm[k] / denom);
    }
    vec::store(m + e, mm);
    vec::store(v + e, vv);
    vec::store(p + e, pp);
    if (half) vec::store(half + e, pp);
  });
}

}  // namespace cs::cuda::ew
