// The element-wise, memory-bound kernels of the CUDA backend (SwiGLU, dtype casts, the head split
// and merge, RoPE, the f32 add and scale, AdamW): each thread moves N consecutive elements per access through vec.cuh (16
// bytes at a time where the host found the sizes and pointers aligned, else N = 1), and the
// arithmetic of each element is the scalar formula, so both paths give the same bits. Row-shaped
// ones take rows on the grid's y (grid-stride) and columns on x, so no 64-bit division per element.
// In a header so that tests/cuda_emu/ runs their text on the CPU.
// Several .cu files instantiate the same kernels; the linker keeps one, which is right only while
// they are all built for the same architectures: not to be included by attention_wgmma.cu (sm_90a).
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

// Rotary embedding, rotate-half form (cpu/rope.cpp's angles): the cos / sin table first, one entry
// per (position row p < rows, i < half): inv_freq = 1 / base^(2i/hd) formed in double and rounded
// to f32, the f32 angle (pos0 + pos) * inv_freq as Hugging Face forms it, cos and sin of it in
// double, rounded. Position row p is position p (positions null) or positions[p] (a sample's own).
// (A template, as every kernel in this header, so that each .cu including it may instantiate it.)
template <typename Pos>
__global__ void rope_table(int64_t rows, int64_t half, float base, int64_t pos0, const Pos* positions,
                           float* cos_t, float* sin_t) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < rows * half; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t p = e / half, i = e - p * half;
    const int64_t pos = positions ? int64_t(positions[p]) : p;
    const float inv_freq = float(1.0 / pow(double(base), double(2 * i) / double(2 * half)));
    const float angle = float(pos0 + pos) * inv_freq;
    cos_t[e] = float(cos(double(angle)));
    sin_t[e] = float(sin(double(angle)));
  }
}

// Then x (B, H, T, 2 * half) in place, N pairs (i, half + i) a thread: x1' = x1 cos - x2 sin, x2' =
// x2 cos + x1 sin (sin negated for the inverse: sign -1), the table row of (b, t) being b * T + t
// with per-sample positions, else t; half % N == 0.
template <int N, typename T>
__global__ void rope_rotate(T* x, int64_t rows, int64_t heads, int64_t t_len, int64_t half, const float* cos_t,
                            const float* sin_t, bool per_sample, float sign) {
  const int64_t per_row = half / N;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < rows * per_row; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = e / per_row, i = (e - row * per_row) * N;
    const int64_t t = row % t_len, b = row / t_len / heads;
    const int64_t p = (per_sample ? b * t_len + t : t) * half + i;
    T* r = x + row * 2 * half;
    float x1[N], x2[N], cs[N], sn[N];
    vec::load(r + i, x1);
    vec::load(r + half + i, x2);
    vec::load(cos_t + p, cs);
    vec::load(sin_t + p, sn);
#pragma unroll
    for (int k = 0; k < N; ++k) {
      const float a = x1[k], b2 = x2[k], s = sign * sn[k];
      x1[k] = a * cs[k] - b2 * s;
      x2[k] = b2 * cs[k] + a * s;
    }
    vec::store(r + i, x1);
    vec::store(r + half + i, x2);
  }
}

// y += x and x *= alpha (f32: the residual adds and the gradient scaling).
template <int N>
__global__ void add(float* y, const float* x, int64_t n) {
  flat<N>(n, [&](int64_t e, auto w) {
    constexpr int M = decltype(w)::value;
    float a[M], b[M];
    vec::load(y + e, a);
    vec::load(x + e, b);
#pragma unroll
    for (int k = 0; k < M; ++k) a[k] += b[k];
    vec::store(y + e, a);
  });
}
template <int N>
__global__ void scale(float* x, float alpha, int64_t n) {
  flat<N>(n, [&](int64_t e, auto w) {
    constexpr int M = decltype(w)::value;
    float a[M];
    vec::load(x + e, a);
#pragma unroll
    for (int k = 0; k < M; ++k) a[k] *= alpha;
    vec::store(x + e, a);
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
