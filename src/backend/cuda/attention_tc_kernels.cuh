// The tensor-core flash-attention kernels (see attention_tc.cu for the design), in a header of
// their own so that two compilers build the same text: nvcc for the GPU (attention_tc.cu), and the
// host compiler for tests/cuda_emu/, which runs them on the CPU under an emulation of the CUDA
// primitives they use (threads, barriers, warp shuffles, wmma fragments) against a float64
// reference: CI checks their indexing, masks and synchronisation without a GPU.
#pragma once
#ifndef CS_CUDA_EMULATION
#include <mma.h>

#include "backend/cuda/common.cuh"
#endif
#include "backend/cuda/attention_args.cuh"

namespace cs::cuda::tc {

using namespace nvcuda;

constexpr int kB = 64;         // queries and keys per tile
constexpr int kWarps = 4;      // 16 rows each
constexpr int kTcThreads = kWarps * 32;
constexpr int kLdS = kB + 4;   // f32 score rows (a multiple of 4, as wmma needs for f32)
constexpr int kLdP = kB + 8;   // half-precision P / dS rows (a multiple of 8)

template <int HD>
__host__ __device__ constexpr int ld_h() { return HD + 8; }  // half-precision q / k / v / dO rows
template <int HD>
__host__ __device__ constexpr int ld_o() { return HD + 4; }  // f32 output rows

__host__ __device__ constexpr size_t round128(size_t b) { return (b + 127) / 128 * 128; }

template <typename T>
using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major>;
template <typename T>
using FragAT = wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::col_major>;  // a transposed
template <typename T>
using FragB = wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major>;
template <typename T>
using FragBT = wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major>;  // b transposed
using Acc = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

// Rows [r0, r0 + 64) of a (rows, HD) head into shared memory (row stride ld); rows past `rows` zero.
template <typename T, int HD>
__device__ void load_rows(T* dst, const T* src, int64_t r0, int64_t rows) {
  constexpr int ld = ld_h<HD>();
  for (int e = threadIdx.x; e < kB * HD; e += blockDim.x) {
    const int r = e / HD, d = e % HD;
    dst[r * ld + d] = r0 + r < rows ? src[(r0 + r) * HD + d] : T(0.f);
  }
}

// S (16 x 64, f32 in s with stride kLdS) = A rows (16 x HD, stride ld_h) times B rows^T (64 x HD).
template <typename T, int HD>
__device__ void rows_times_rows_t(const T* a, const T* b, float* s) {
  constexpr int ld = ld_h<HD>();
#pragma unroll
  for (int n = 0; n < kB / 16; ++n) {
    Acc acc;
    wmma::fill_fragment(acc, 0.f);
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk) {
      FragA<T> fa;
      FragBT<T> fb;
      wmma::load_matrix_sync(fa, a + kk * 16, ld);
      wmma::load_matrix_sync(fb, b + n * 16 * ld + kk * 16, ld);
      wmma::mma_sync(acc, fa, fb, acc);
    }
    wmma::store_matrix_sync(s + n * 16, acc, kLdS, wmma::mem_row_major);
  }
}

// A warp's 16 x HD f32 result (HD/16 fragments) times mul into rows [r0, r0 + 16) of out
// (rows, HD), through the warp's staging (16 x ld_o f32); rows past `rows` are not written.
template <int HD>
__device__ __forceinline__ void store_rows(Acc (&acc)[HD / 16], float mul, float* stage, float* out, int64_t r0,
                                           int64_t rows) {
  constexpr int ldo = ld_o<HD>();
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int n = 0; n < HD / 16; ++n) {
    for (int e = 0; e < acc[n].num_elements; ++e) acc[n].x[e] *= mul;
    wmma::store_matrix_sync(stage + n * 16, acc[n], ldo, wmma::mem_row_major);
  }
  __syncwarp();
  for (int e = lane; e < 16 * HD; e += 32) {
    const int rr = e / HD, d = e % HD;
    if (r0 + rr < rows) out[(r0 + rr) * HD + d] = stage[rr * ldo + d];
  }
  __syncwarp();  // the staging may be written again
}

__device__ __forceinline__ bool visible(int64_t i, int64_t pos, int64_t j, int64_t tk, const int32_t* runs) {
  return j < tk && j <= pos && (!runs || runs[j] == runs[i]);
}

template <typename T, int HD>
__global__ void __launch_bounds__(kTcThreads) tc_forward_kernel(FlashArgs<T> a) {
  CS_TC_SHARED(smem);
  constexpr int ldh = ld_h<HD>(), ldo = ld_o<HD>();
  T* sQ = reinterpret_cast<T*>(smem);
  T* sK = sQ + kB * ldh;
  T* sV = sK + kB * ldh;
  float* sS = reinterpret_cast<float*>(sV + kB * ldh);   // kWarps x 16 x kLdS
  float* sO = sS + kWarps * 16 * kLdS;                    // kWarps x 16 x ldo
  T* sP = reinterpret_cast<T*>(sO + kWarps * 16 * ldo);   // kWarps x 16 x kLdP
  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
  const int64_t bh = blockIdx.x, b = bh / a.heads, q0 = int64_t(blockIdx.y) * kB;
  const T* kh = a.k + bh * a.kv_head_stride;
  const T* vh = a.v + bh * a.kv_head_stride;
  const float slope = a.slopes ? a.slopes[bh % a.heads] : 0.f;
  const int32_t* runs = a.segments ? a.segments + b * a.tk : nullptr;
  load_rows<T, HD>(sQ, a.q + bh * a.q_head_stride, q0, a.tq);
  float* wS = sS + warp * 16 * kLdS;
  float* wO = sO + warp * 16 * ldo;
  T* wP = sP + warp * 16 * kLdP;
  for (int e = lane; e < 16 * ldo; e += 32) wO[e] = 0.f;
  // Lanes 2r and 2r+1 own row r of the warp's 16 (columns [32h, 32h + 32) of a tile, h = lane & 1)
  // and both keep its running max and sum.
  const int r = lane >> 1, h = lane & 1;
  const int64_t row = q0 + warp * 16 + r, pos = a.q_pos0 + row;
  float m = -INFINITY, l = 0.f;
  const int64_t warp_last = a.q_pos0 + min(a.tq - 1, q0 + warp * 16 + 15);  // the warp's last position
  const int64_t k_end = min(a.tk, a.q_pos0 + min(a.tq, q0 + kB));
  for (int64_t k0 = 0; k0 < k_end; k0 += kB) {
    __syncthreads();
    load_rows<T, HD>(sK, kh, k0, a.tk);
    load_rows<T, HD>(sV, vh, k0, a.tk);
    __syncthreads();
    if (k0 > warp_last || q0 + warp * 16 >= a.tq) continue;  // nothing visible to the warp's rows
    rows_times_rows_t<T, HD>(sQ + warp * 16 * ldh, sK, wS);
    __syncwarp();
    float mx = -INFINITY;
    for (int cc = 0; cc < 32; ++cc) {
      const int col = h * 32 + cc;
      const int64_t j = k0 + col;
      float s = -INFINITY;
      if (row < a.tq && visible(row, pos, j, a.tk, runs)) s = wS[r * kLdS + col] * a.scale + slope * float(j - pos);
      wS[r * kLdS + col] = s;
      mx = fmaxf(mx, s);
    }
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    const float m_new = fmaxf(m, mx);
    const float corr = m_new == -INFINITY ? 1.f : __expf(m - m_new);
    float sum = 0.f;
    for (int cc = 0; cc < 32; ++cc) {
      const int col = h * 32 + cc;
      const float s = wS[r * kLdS + col];
      const float p = s == -INFINITY ? 0.f : __expf(s - m_new);
      T pt;
      st(&pt, p);
      wP[r * kLdP + col] = pt;
      sum += ld(&pt);  // l sums the rounded P that P V multiplies
    }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    l = l * corr + sum;
    m = m_new;
    for (int d = h * (HD / 2); d < (h + 1) * (HD / 2); ++d) wO[r * ldo + d] *= corr;
    __syncwarp();
#pragma unroll
    for (int n = 0; n < HD / 16; ++n) {
      Acc acc;
      wmma::load_matrix_sync(acc, wO + n * 16, ldo, wmma::mem_row_major);
#pragma unroll
      for (int kk = 0; kk < kB / 16; ++kk) {
        FragA<T> fp;
        FragB<T> fv;
        wmma::load_matrix_sync(fp, wP + kk * 16, kLdP);
        wmma::load_matrix_sync(fv, sV + kk * 16 * ldh + n * 16, ldh);
        wmma::mma_sync(acc, fp, fv, acc);
      }
      wmma::store_matrix_sync(wO + n * 16, acc, ldo, wmma::mem_row_major);
    }
    __syncwarp();
  }
  __syncwarp();
  if (row < a.tq) {
    const float inv = l > 0.f ? 1.f / l : 0.f;
    T* o = a.o + bh * a.q_head_stride + row * HD;
    for (int d = h * (HD / 2); d < (h + 1) * (HD / 2); ++d) st(o + d, wO[r * ldo + d] * inv);
    if (a.lse && h == 0) a.lse[bh * a.tq + row] = m + logf(l);
  }
}

// dK, dV of one key tile (64 keys; warp w owns keys 16w..16w+15) over the query tiles at or after it.
template <typename T, int HD>
__global__ void __launch_bounds__(kTcThreads) tc_dkdv_kernel(FlashArgs<T> a, const float* delta, float* dk, float* dv) {
  CS_TC_SHARED(smem);
  constexpr int ldh = ld_h<HD>(), ldo = ld_o<HD>();
  T* sK = reinterpret_cast<T*>(smem);
  T* sV = sK + kB * ldh;
  T* sQ = sV + kB * ldh;
  T* sdO = sQ + kB * ldh;  // sQ and sdO together also stage the results (kWarps x 16 x ldo f32)
  float* sS = reinterpret_cast<float*>(sdO + kB * ldh);  // 64 x kLdS: S, then dP
  T* sP = reinterpret_cast<T*>(sS + kB * kLdS);          // 64 x kLdP
  T* sdS = sP + kB * kLdP;                               // 64 x kLdP
  float* sL = reinterpret_cast<float*>(sdS + kB * kLdP);  // 64
  float* sD = sL + kB;                                     // 64
  const int warp = threadIdx.x / 32;
  const int64_t bh = blockIdx.x, b = bh / a.heads, k0 = int64_t(blockIdx.y) * kB, t_len = a.tk;
  const float slope = a.slopes ? a.slopes[bh % a.heads] : 0.f;
  const int32_t* runs = a.segments ? a.segments + b * t_len : nullptr;
  load_rows<T, HD>(sK, a.k + bh * a.kv_head_stride, k0, t_len);
  load_rows<T, HD>(sV, a.v + bh * a.kv_head_stride, k0, t_len);
  Acc accK[HD / 16], accV[HD / 16];
#pragma unroll
  for (int n = 0; n < HD / 16; ++n) {
    wmma::fill_fragment(accK[n], 0.f);
    wmma::fill_fragment(accV[n], 0.f);
  }
  for (int64_t q0 = k0 / kB * kB; q0 < a.tq; q0 += kB) {
    __syncthreads();
    load_rows<T, HD>(sQ, a.q + bh * a.q_head_stride, q0, a.tq);
    load_rows<T, HD>(sdO, a.dout + bh * a.q_head_stride, q0, a.tq);
    if (threadIdx.x < kB) {
      const int64_t i = q0 + threadIdx.x;
      sL[threadIdx.x] = i < a.tq ? a.lse[bh * a.tq + i] : 0.f;
      sD[threadIdx.x] = i < a.tq ? delta[bh * a.tq + i] : 0.f;
    }
    __syncthreads();
    // S = Q K^T, warp w its 16 query rows; then P for the whole tile.
    rows_times_rows_t<T, HD>(sQ + warp * 16 * ldh, sK, sS + warp * 16 * kLdS);
    __syncthreads();
    for (int e = threadIdx.x; e < kB * kB; e += blockDim.x) {
      const int qi = e / kB, kj = e % kB;
      const int64_t i = q0 + qi, j = k0 + kj;
      float p = 0.f;
      if (i < a.tq && visible(i, i, j, t_len, runs))
        p = __expf(sS[qi * kLdS + kj] * a.scale + slope * float(j - i) - sL[qi]);
      st(sP + qi * kLdP + kj, p);
    }
    __syncthreads();
    // dP = dO V^T into sS; then dS = P (dP - D).
    rows_times_rows_t<T, HD>(sdO + warp * 16 * ldh, sV, sS + warp * 16 * kLdS);
    __syncthreads();
    for (int e = threadIdx.x; e < kB * kB; e += blockDim.x) {
      const int qi = e / kB, kj = e % kB;
      const float p = ld(sP + qi * kLdP + kj);
      st(sdS + qi * kLdP + kj, p * (sS[qi * kLdS + kj] - sD[qi]) * a.scale);  // scaled first: f16 headroom
    }
    __syncthreads();
    // dV(keys of warp w) += P^T dO, dK += dS^T Q: P^T is P read column-major.
#pragma unroll
    for (int kk = 0; kk < kB / 16; ++kk) {
      FragAT<T> fp, fds;
      wmma::load_matrix_sync(fp, sP + kk * 16 * kLdP + warp * 16, kLdP);
      wmma::load_matrix_sync(fds, sdS + kk * 16 * kLdP + warp * 16, kLdP);
#pragma unroll
      for (int n = 0; n < HD / 16; ++n) {
        FragB<T> fdo, fq;
        wmma::load_matrix_sync(fdo, sdO + kk * 16 * ldh + n * 16, ldh);
        wmma::load_matrix_sync(fq, sQ + kk * 16 * ldh + n * 16, ldh);
        wmma::mma_sync(accV[n], fp, fdo, accV[n]);
        wmma::mma_sync(accK[n], fds, fq, accK[n]);
      }
    }
  }
  __syncthreads();  // sQ / sdO become the staging of the results
  float* stage = reinterpret_cast<float*>(sQ) + warp * 16 * ldo;
  store_rows<HD>(accK, 1.f, stage, dk + bh * t_len * HD, k0 + warp * 16, t_len);
  store_rows<HD>(accV, 1.f, stage, dv + bh * t_len * HD, k0 + warp * 16, t_len);
}

// dQ of one query tile (warp w owns rows 16w..16w+15) over the key tiles up to the causal limit.
template <typename T, int HD>
__global__ void __launch_bounds__(kTcThreads) tc_dq_kernel(FlashArgs<T> a, const float* delta, float* dq) {
  CS_TC_SHARED(smem);
  constexpr int ldh = ld_h<HD>(), ldo = ld_o<HD>();
  T* sQ = reinterpret_cast<T*>(smem);
  T* sdO = sQ + kB * ldh;  // sQ and sdO together also stage the result
  T* sK = sdO + kB * ldh;
  T* sV = sK + kB * ldh;
  float* sS = reinterpret_cast<float*>(sV + kB * ldh);  // kWarps x 16 x kLdS
  T* sdS = reinterpret_cast<T*>(sS + kWarps * 16 * kLdS);  // kWarps x 16 x kLdP
  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
  const int64_t bh = blockIdx.x, b = bh / a.heads, q0 = int64_t(blockIdx.y) * kB, t_len = a.tk;
  const float slope = a.slopes ? a.slopes[bh % a.heads] : 0.f;
  const int32_t* runs = a.segments ? a.segments + b * t_len : nullptr;
  load_rows<T, HD>(sQ, a.q + bh * a.q_head_stride, q0, a.tq);
  load_rows<T, HD>(sdO, a.dout + bh * a.q_head_stride, q0, a.tq);
  float* wS = sS + warp * 16 * kLdS;
  T* wdS = sdS + warp * 16 * kLdP;
  const int r = lane >> 1, h = lane & 1;
  const int64_t i = q0 + warp * 16 + r;
  const float lse_i = i < a.tq ? a.lse[bh * a.tq + i] : 0.f, d_i = i < a.tq ? delta[bh * a.tq + i] : 0.f;
  Acc acc[HD / 16];
#pragma unroll
  for (int n = 0; n < HD / 16; ++n) wmma::fill_fragment(acc[n], 0.f);
  const int64_t warp_last = min(a.tq - 1, q0 + warp * 16 + 15);
  const int64_t k_end = min(t_len, q0 + kB);
  float p[32];
  for (int64_t k0 = 0; k0 < k_end; k0 += kB) {
    __syncthreads();
    load_rows<T, HD>(sK, a.k + bh * a.kv_head_stride, k0, t_len);
    load_rows<T, HD>(sV, a.v + bh * a.kv_head_stride, k0, t_len);
    __syncthreads();
    if (k0 > warp_last || q0 + warp * 16 >= a.tq) continue;
    rows_times_rows_t<T, HD>(sQ + warp * 16 * ldh, sK, wS);
    __syncwarp();
#pragma unroll
    for (int cc = 0; cc < 32; ++cc) {
      const int col = h * 32 + cc;
      const int64_t j = k0 + col;
      float pv = 0.f;
      if (i < a.tq && visible(i, i, j, t_len, runs))
        pv = __expf(wS[r * kLdS + col] * a.scale + slope * float(j - i) - lse_i);
      T pt;
      st(&pt, pv);
      p[cc] = ld(&pt);  // rounded, as the dK / dV kernel's P
    }
    __syncwarp();
    rows_times_rows_t<T, HD>(sdO + warp * 16 * ldh, sV, wS);  // dP
    __syncwarp();
#pragma unroll
    for (int cc = 0; cc < 32; ++cc) {
      const int col = h * 32 + cc;
      st(wdS + r * kLdP + col, p[cc] * (wS[r * kLdS + col] - d_i) * a.scale);  // as the dK / dV kernel's
    }
    __syncwarp();
#pragma unroll
    for (int kk = 0; kk < kB / 16; ++kk) {
      FragA<T> fds;
      wmma::load_matrix_sync(fds, wdS + kk * 16, kLdP);
#pragma unroll
      for (int n = 0; n < HD / 16; ++n) {
        FragB<T> fk;
        wmma::load_matrix_sync(fk, sK + kk * 16 * ldh + n * 16, ldh);
        wmma::mma_sync(acc[n], fds, fk, acc[n]);
      }
    }
  }
  __syncthreads();  // sQ / sdO become the staging of the result
  float* stage = reinterpret_cast<float*>(sQ) + warp * 16 * ldo;
  store_rows<HD>(acc, 1.f, stage, dq + bh * a.tq * HD, q0 + warp * 16, a.tq);
}

template <int HD>
__host__ __device__ constexpr size_t forward_smem() {
  return round128(3 * size_t(kB) * ld_h<HD>() * 2) + round128(size_t(kWarps) * 16 * kLdS * 4) +
         round128(size_t(kWarps) * 16 * ld_o<HD>() * 4) + round128(size_t(kWarps) * 16 * kLdP * 2);
}
template <int HD>
__host__ __device__ constexpr size_t dkdv_smem() {
  return 4 * size_t(kB) * ld_h<HD>() * 2 + size_t(kB) * kLdS * 4 + 2 * size_t(kB) * kLdP * 2 + 2 * size_t(kB) * 4;
}
template <int HD>
__host__ __device__ constexpr size_t dq_smem() {
  return 4 * size_t(kB) * ld_h<HD>() * 2 + size_t(kWarps) * 16 * kLdS * 4 + size_t(kWarps) * 16 * kLdP * 2;
}
// The staging of the backward's results (kWarps x 16 x ld_o f32) fits in sQ and sdO.
static_assert(size_t(kWarps) * 16 * ld_o<128>() * 4 <= 2 * size_t(kB) * ld_h<128>() * 2);
static_assert(size_t(kWarps) * 16 * ld_o<32>() * 4 <= 2 * size_t(kB) * ld_h<32>() * 2);
// The forward's carve-up is unpadded: every region's size is a multiple of 128 bytes already.
static_assert(3 * size_t(kB) * ld_h<32>() * 2 % 128 == 0 && size_t(kWarps) * 16 * kLdS * 4 % 128 == 0 &&
              size_t(kWarps) * 16 * ld_o<32>() * 4 % 128 == 0);

}  // namespace cs::cuda::tc
