// The flash-attention forward shared by training (attention.cu) and decoding over the KV cache
// (attention_decode.cu): one block per (32-query tile, batch x head), 8 warps of 4 query rows,
// an online softmax over 32-key tiles held in shared memory (f32 whatever the storage dtype).
// Query row r of a head sits at absolute position q_pos0 + r and sees the keys j <= its position
// (and, with segments, only those of its own packed sample).
#pragma once
#include <type_traits>

#include "backend/cuda/common.cuh"

namespace cs::cuda {

constexpr int kTile = 32;         // queries and keys per tile (keys: one per lane)
constexpr int kThreads = 256;     // 8 warps
constexpr int kRowsPerWarp = kTile / (kThreads / 32);
constexpr int kMaxHeadDim = 256;  // 8 dims per lane

template <typename T>
struct FlashArgs {
  const T *q, *k, *v;
  T* o;                 // forward output (null in the backward)
  const T* dout;        // backward input (null in the forward)
  float* lse;           // (B*H, tq): written by the forward unless null; read by the backward
  const float* slopes;  // (H) ALiBi slopes or null
  const int32_t* segments;  // (B, tk) packed-sample ids or null (training: tq == tk, q_pos0 == 0)
  int64_t tq, tk, q_pos0;   // query rows, keys, the first query's position
  int64_t q_head_stride, kv_head_stride;  // elements between heads (the cache's is Tcap * Hd)
  int hd, heads;
  float scale;
};

// Calls fn(std::integral_constant<int, KD>) with KD = head dims per lane (hd <= 32 KD).
template <typename Fn>
void with_head_dim(int hd, Fn&& fn) {
  if (hd <= 32) fn(std::integral_constant<int, 1>{});
  else if (hd <= 64) fn(std::integral_constant<int, 2>{});
  else if (hd <= 128) fn(std::integral_constant<int, 4>{});
  else fn(std::integral_constant<int, 8>{});
}

template <typename T, int KD>
__global__ void __launch_bounds__(kThreads) flash_forward_kernel(FlashArgs<T> a) {
  extern __shared__ float sm[];
  const int hd = a.hd, kpad = hd + 1;  // K rows padded: lane j reads row j, column d
  float* sQ = sm;                      // 32 x hd
  float* sK = sQ + kTile * hd;         // 32 x (hd + 1)
  float* sV = sK + kTile * kpad;       // 32 x hd
  const int64_t bh = blockIdx.y, b = bh / a.heads, q0 = int64_t(blockIdx.x) * kTile;
  const T* qh = a.q + bh * a.q_head_stride;
  const T* kh = a.k + bh * a.kv_head_stride;
  const T* vh = a.v + bh * a.kv_head_stride;
  const float slope = a.slopes ? a.slopes[bh % a.heads] : 0.f;
  const int32_t* seg = a.segments ? a.segments + b * a.tk : nullptr;
  for (int e = threadIdx.x; e < kTile * hd; e += blockDim.x) {
    const int r = e / hd, d = e % hd;
    sQ[e] = q0 + r < a.tq ? ld(qh + (q0 + r) * hd + d) : 0.f;
  }
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
    for (int e = threadIdx.x; e < kTile * hd; e += blockDim.x) {
      const int r = e / hd, d = e % hd;
      const bool in = k0 + r < a.tk;
      sK[r * kpad + d] = in ? ld(kh + (k0 + r) * hd + d) : 0.f;
      sV[r * hd + d] = in ? ld(vh + (k0 + r) * hd + d) : 0.f;
    }
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

// Launches the forward over bh heads on the context's stream.
template <typename T>
void flash_forward(Ctx& c, const FlashArgs<T>& a, int64_t bh) {
  const dim3 grid(unsigned((a.tq + kTile - 1) / kTile), unsigned(bh));
  const size_t smem = size_t(kTile) * (3 * a.hd + 1) * sizeof(float);
  with_head_dim(a.hd, [&](auto kd) {
    constexpr int KD = decltype(kd)::value;
    auto kernel = flash_forward_kernel<T, KD>;
    check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)),
          "attention_forward (shared memory)");
    kernel<<<grid, kThreads, smem, stream(c)>>>(a);
    check_launch("attention_forward");
  });
}

}  // namespace cs::cuda
