// The portable flash-attention kernels (see attention.cu for the design): the forward (also
// decoding's), the delta pass and the two backward kernels, in a header of their own so that the
// host compiler builds the same text for the CPU emulation of tests/cuda_emu/.
#pragma once
#ifndef CS_CUDA_EMULATION
#include "backend/cuda/common.cuh"
#endif
#include "backend/cuda/attention_args.cuh"
#include "backend/cuda/warp_reduce.cuh"

// The dynamic shared memory of a block, as floats (the emulation gives each block its own).
#ifndef CS_FLASH_SHARED
#define CS_FLASH_SHARED(name) extern __shared__ float name[]
#endif

namespace cs::cuda::portable {

// Each kernel's dynamic shared memory (its carve-up is at the top of the kernel).
inline size_t forward_smem_bytes(int hd) { return size_t(kTile) * (3 * hd + 1) * sizeof(float); }
inline size_t dkdv_smem_bytes(int hd) {
  return (2 * size_t(kTile) * (hd + 1) + 2 * size_t(kTile) * hd + 2 * size_t(kTile) * (kTile + 1) + 2 * kTile) *
         sizeof(float);
}
inline size_t dq_smem_bytes(int hd) { return (2 * size_t(kTile) * (hd + 1) + 2 * size_t(kTile) * hd) * sizeof(float); }

// Loads rows [r0, r0 + 32) of a (rows, hd) head into shared memory with row stride `stride`, as f32;
// rows past `rows` are zeros.
template <typename T>
__device__ void load_tile(float* dst, int stride, const T* src, int64_t r0, int64_t rows, int hd) {
  for (int e = threadIdx.x; e < kTile * hd; e += blockDim.x) {
    const int r = e / hd, d = e % hd;
    dst[r * stride + d] = r0 + r < rows ? ld(src + (r0 + r) * hd + d) : 0.f;
  }
}

template <typename T, int KD>
__global__ void __launch_bounds__(kThreads) flash_forward_kernel(FlashArgs<T> a) {
  CS_FLASH_SHARED(sm);
  const int hd = a.hd, kpad = hd + 1;  // K rows padded: lane j reads row j, column d
  float* sQ = sm;                      // 32 x hd
  float* sK = sQ + kTile * hd;         // 32 x (hd + 1)
  float* sV = sK + kTile * kpad;       // 32 x hd
  const int64_t bh = blockIdx.x, b = bh / a.heads, q0 = int64_t(blockIdx.y) * kTile;
  const T* qh = a.q + bh * a.q_head_stride;
  const T* kh = a.k + bh * a.kv_head_stride;
  const T* vh = a.v + bh * a.kv_head_stride;
  const float slope = a.slopes ? a.slopes[bh % a.heads] : 0.f;
  const int32_t* seg = a.segments ? a.segments + b * a.tk : nullptr;
  load_tile(sQ, hd, qh, q0, a.tq, hd);
  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
  float m[kRowsPerWarp], l[kRowsPerWarp], acc[kRowsPerWarp][KD];
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    m[rr] = -INFINITY;
    l[rr] = 0.f;
#pragma unroll
    for (int kk = 0; kk < KD; ++kk) acc[rr][kk] = 0.f;
  }
  // Keys up to the last query's position (causal), within the keys there are.
  const int64_t k_end = min(a.tk, a.q_pos0 + min(a.tq, q0 + kTile));
  for (int64_t k0 = 0; k0 < k_end; k0 += kTile) {
    __syncthreads();  // the previous tile is no longer read
    load_tile(sK, kpad, kh, k0, a.tk, hd);
    load_tile(sV, hd, vh, k0, a.tk, hd);
    __syncthreads();
    const int64_t j = k0 + lane;
#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; ++rr) {
      const int r = warp * kRowsPerWarp + rr;
      const int64_t row = q0 + r, pos = a.q_pos0 + row;
      if (row >= a.tq) continue;  // warp-uniform
      const bool valid = j < a.tk && j <= pos && (!seg || seg[j] == seg[row]);
      float s = -INFINITY;
      if (valid) {
        float dot = 0.f;
        for (int d = 0; d < hd; ++d) dot += sQ[r * hd + d] * sK[lane * kpad + d];
        s = dot * a.scale + slope * float(j - pos);
      }
      const float m_new = fmaxf(m[rr], warp_max(s));
      if (m_new == -INFINITY) continue;  // nothing of this tile is visible to the row (warp-uniform)
      const float p = valid ? __expf(s - m_new) : 0.f;
      const float corr = __expf(m[rr] - m_new);  // 0 on the first visible tile (m = -inf)
      l[rr] = l[rr] * corr + warp_sum(p);
      m[rr] = m_new;
#pragma unroll
      for (int kk = 0; kk < KD; ++kk) acc[rr][kk] *= corr;
      for (int jj = 0; jj < kTile; ++jj) {
        const float pj = __shfl_sync(0xffffffffu, p, jj);
#pragma unroll
        for (int kk = 0; kk < KD; ++kk) {
          const int d = lane + 32 * kk;
          if (d < hd) acc[rr][kk] += pj * sV[jj * hd + d];
        }
      }
    }
  }
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    const int64_t row = q0 + warp * kRowsPerWarp + rr;
    if (row >= a.tq) continue;
    const float inv = l[rr] > 0.f ? 1.f / l[rr] : 0.f;
#pragma unroll
    for (int kk = 0; kk < KD; ++kk) {
      const int d = lane + 32 * kk;
      if (d < hd) st(a.o + bh * a.q_head_stride + row * hd + d, acc[rr][kk] * inv);
    }
    if (a.lse && lane == 0) a.lse[bh * a.tq + row] = m[rr] + logf(l[rr]);
  }
}

// D[i] = sum_d dO[i, d] * O[i, d], one warp per row.
template <typename T>
__global__ void attention_delta_kernel(const T* o, const T* dout, int64_t rows, int64_t hd, float* delta) {
  const int64_t row = blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32;
  if (row >= rows) return;
  const int lane = threadIdx.x & 31;
  float s = 0.f;
  for (int64_t d = lane; d < hd; d += 32) s += ld(o + row * hd + d) * ld(dout + row * hd + d);
  s = warp_sum(s);
  if (lane == 0) delta[row] = s;
}

// dK, dV of one key tile, over every query tile at or after it. Thread t owns the elements
// e = t + 256 m of the (32 keys) x (32 KD dims) tile.
template <typename T, int KD>
__global__ void __launch_bounds__(kThreads) attention_dkdv_kernel(FlashArgs<T> a, const float* delta, float* dk,
                                                                   float* dv) {
  CS_FLASH_SHARED(sm);
  const int hd = a.hd, kpad = hd + 1;
  float* sK = sm;                      // 32 x (hd + 1)
  float* sV = sK + kTile * kpad;       // 32 x (hd + 1)
  float* sQ = sV + kTile * kpad;       // 32 x hd
  float* sdO = sQ + kTile * hd;        // 32 x hd
  float* sP = sdO + kTile * hd;        // 32 x 33
  float* sdS = sP + kTile * (kTile + 1);  // 32 x 33
  float* sL = sdS + kTile * (kTile + 1);  // 32: lse
  float* sD = sL + kTile;                 // 32: delta
  const int64_t bh = blockIdx.x, b = bh / a.heads, k0 = int64_t(blockIdx.y) * kTile, t_len = a.tk;
  const T* qh = a.q + bh * a.q_head_stride;
  const T* kh = a.k + bh * a.kv_head_stride;
  const T* vh = a.v + bh * a.kv_head_stride;
  const T* doh = a.dout + bh * a.q_head_stride;
  const float slope = a.slopes ? a.slopes[bh % a.heads] : 0.f;
  const int32_t* seg = a.segments ? a.segments + b * t_len : nullptr;
  load_tile(sK, kpad, kh, k0, t_len, hd);
  load_tile(sV, kpad, vh, k0, t_len, hd);
  constexpr int kOwn = kTile * 32 * KD / kThreads;
  float accK[kOwn], accV[kOwn];
#pragma unroll
  for (int m = 0; m < kOwn; ++m) accK[m] = accV[m] = 0.f;
  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
  const int64_t j = k0 + lane;
  for (int64_t q0 = k0 / kTile * kTile; q0 < a.tq; q0 += kTile) {
    __syncthreads();  // the previous tile's sQ, sdO, sP, sdS are no longer read
    load_tile(sQ, hd, qh, q0, a.tq, hd);
    load_tile(sdO, hd, doh, q0, a.tq, hd);
    if (threadIdx.x < kTile) {
      const int64_t i = q0 + threadIdx.x;
      sL[threadIdx.x] = i < a.tq ? a.lse[bh * a.tq + i] : 0.f;
      sD[threadIdx.x] = i < a.tq ? delta[bh * a.tq + i] : 0.f;
    }
    __syncthreads();
    for (int rr = 0; rr < kRowsPerWarp; ++rr) {
      const int r = warp * kRowsPerWarp + rr;
      const int64_t i = q0 + r;
      float p = 0.f, ds = 0.f;
      if (i < a.tq && j < t_len && j <= i && (!seg || seg[j] == seg[i])) {
        float s = 0.f, dp = 0.f;
        for (int d = 0; d < hd; ++d) {
          s += sQ[r * hd + d] * sK[lane * kpad + d];
          dp += sdO[r * hd + d] * sV[lane * kpad + d];
        }
        s = s * a.scale + slope * float(j - i);
        p = __expf(s - sL[r]);
        ds = p * (dp - sD[r]);
      }
      sP[r * (kTile + 1) + lane] = p;
      sdS[r * (kTile + 1) + lane] = ds;
    }
    __syncthreads();
#pragma unroll
    for (int m = 0; m < kOwn; ++m) {
      const int e = threadIdx.x + m * kThreads, jj = e / (32 * KD), d = e % (32 * KD);
      if (d >= hd) continue;
      float gk = 0.f, gv = 0.f;
      for (int r = 0; r < kTile; ++r) {
        gv += sP[r * (kTile + 1) + jj] * sdO[r * hd + d];
        gk += sdS[r * (kTile + 1) + jj] * sQ[r * hd + d];
      }
      accK[m] += gk;
      accV[m] += gv;
    }
  }
#pragma unroll
  for (int m = 0; m < kOwn; ++m) {
    const int e = threadIdx.x + m * kThreads, jj = e / (32 * KD), d = e % (32 * KD);
    if (d >= hd || k0 + jj >= t_len) continue;
    dk[(bh * t_len + k0 + jj) * hd + d] = accK[m] * a.scale;
    dv[(bh * t_len + k0 + jj) * hd + d] = accV[m];
  }
}

// dQ of one query tile, over the key tiles up to the causal limit.
template <typename T, int KD>
__global__ void __launch_bounds__(kThreads) attention_dq_kernel(FlashArgs<T> a, const float* delta, float* dq) {
  CS_FLASH_SHARED(sm);
  const int hd = a.hd, kpad = hd + 1;
  float* sQ = sm;                  // 32 x hd
  float* sdO = sQ + kTile * hd;    // 32 x hd
  float* sK = sdO + kTile * hd;    // 32 x (hd + 1)
  float* sV = sK + kTile * kpad;   // 32 x (hd + 1)
  const int64_t bh = blockIdx.x, b = bh / a.heads, q0 = int64_t(blockIdx.y) * kTile, t_len = a.tk;
  const T* kh = a.k + bh * a.kv_head_stride;
  const T* vh = a.v + bh * a.kv_head_stride;
  const float slope = a.slopes ? a.slopes[bh % a.heads] : 0.f;
  const int32_t* seg = a.segments ? a.segments + b * t_len : nullptr;
  load_tile(sQ, hd, a.q + bh * a.q_head_stride, q0, a.tq, hd);
  load_tile(sdO, hd, a.dout + bh * a.q_head_stride, q0, a.tq, hd);
  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
  float acc[kRowsPerWarp][KD] = {};
  float lse_r[kRowsPerWarp], delta_r[kRowsPerWarp];
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    const int64_t i = q0 + warp * kRowsPerWarp + rr;
    lse_r[rr] = i < a.tq ? a.lse[bh * a.tq + i] : 0.f;
    delta_r[rr] = i < a.tq ? delta[bh * a.tq + i] : 0.f;
  }
  const int64_t k_end = min(t_len, q0 + kTile);
  for (int64_t k0 = 0; k0 < k_end; k0 += kTile) {
    __syncthreads();
    load_tile(sK, kpad, kh, k0, t_len, hd);
    load_tile(sV, kpad, vh, k0, t_len, hd);
    __syncthreads();
    const int64_t j = k0 + lane;
#pragma unroll  // acc, lse_r and delta_r stay in registers only with constant indices
    for (int rr = 0; rr < kRowsPerWarp; ++rr) {
      const int r = warp * kRowsPerWarp + rr;
      const int64_t i = q0 + r;
      if (i >= a.tq) continue;  // warp-uniform
      float ds = 0.f;
      if (j < t_len && j <= i && (!seg || seg[j] == seg[i])) {
        float s = 0.f, dp = 0.f;
        for (int d = 0; d < hd; ++d) {
          s += sQ[r * hd + d] * sK[lane * kpad + d];
          dp += sdO[r * hd + d] * sV[lane * kpad + d];
        }
        s = s * a.scale + slope * float(j - i);
        const float p = __expf(s - lse_r[rr]);
        ds = p * (dp - delta_r[rr]);
      }
      for (int jj = 0; jj < kTile; ++jj) {
        const float dsj = __shfl_sync(0xffffffffu, ds, jj);
#pragma unroll
        for (int kk = 0; kk < KD; ++kk) {
          const int d = lane + 32 * kk;
          if (d < hd) acc[rr][kk] += dsj * sK[jj * kpad + d];
        }
      }
    }
  }
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    const int64_t i = q0 + warp * kRowsPerWarp + rr;
    if (i >= a.tq) continue;
#pragma unroll
    for (int kk = 0; kk < KD; ++kk) {
      const int d = lane + 32 * kk;
      if (d < hd) dq[(bh * a.tq + i) * hd + d] = acc[rr][kk] * a.scale;
    }
  }
}

}  // namespace cs::cuda::portable
