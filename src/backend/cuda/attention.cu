// Flash attention on the GPU, forward and backward (Dao et al. 2022, FlashAttention-2's loop
// order), causal, ALiBi and packed samples, with the CPU kernel's contract (backend.h): no (T, T)
// matrix, lse saved for the backward, q, k, v, o in f32, bf16 or f16 with every product
// accumulated in f32.
//
// bf16 / f16 with head dim 32, 64 or 128 runs on tensor cores (attention_tc.cu); this file holds
// the portable path for the rest (sm_80+; head dims up to 256 on A100 / H100, up to 128 on GPUs with
// 99 KB of shared memory per block such as sm_86 / sm_89): tiles of 32 queries x 32
// keys in shared memory, a warp per 4 query rows, lane j holding key j of the tile's scores and
// head dims lane + 32k of the output. The backward is deterministic without atomics: one kernel
// per key tile accumulates dK and dV over the query tiles, another per query tile accumulates dQ
// over the key tiles (the scores are recomputed in both). The decode op (attention_decode.cu) runs
// the same forward kernel on the KV cache.
#include <cub/block/block_scan.cuh>

#include <type_traits>

#include "backend/cuda/attention_tc.cuh"
#include "backend/cuda/ops.h"

namespace cs::cuda {

namespace {

template <typename T, int KD>
__global__ void __launch_bounds__(kThreads) flash_forward_kernel(FlashArgs<T> a) {
  extern __shared__ float sm[];
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

// runs[b, t] = the index of the run of equal ids position t belongs to in its sequence: packed
// samples are runs (backend.h), and a later run may repeat an earlier run's id, so the kernels
// compare run indices, never the ids themselves. One block per sequence: each thread counts the
// run boundaries of a chunk of positions, a block scan gives every chunk its first run index.
__global__ void __launch_bounds__(1024) segment_runs_kernel(const int32_t* seg, int64_t t_len, int32_t* runs) {
  using Scan = cub::BlockScan<int, 1024>;
  __shared__ typename Scan::TempStorage tmp;
  const int32_t* s = seg + int64_t(blockIdx.x) * t_len;
  int32_t* r = runs + int64_t(blockIdx.x) * t_len;
  const int64_t per = (t_len + 1023) / 1024, t0 = threadIdx.x * per, t1 = min(t_len, t0 + per);
  int boundaries = 0;
  for (int64_t t = t0; t < t1; ++t) boundaries += t > 0 && s[t] != s[t - 1];
  int run = 0;
  Scan(tmp).ExclusiveSum(boundaries, run);
  for (int64_t t = t0; t < t1; ++t) {
    run += t > 0 && s[t] != s[t - 1];
    r[t] = run;
  }
}

// The run indices of segments (B, T), in scratch; null when there are no segments.
const int32_t* segment_runs(Ctx& c, const Tensor& segments, int64_t b, int64_t t, OpScratch& scratch) {
  if (!segments.numel()) return nullptr;
  int32_t* runs = scratch.take<int32_t>(b * t, "attention (segment runs)");
  segment_runs_kernel<<<unsigned(b), 1024, 0, stream(c)>>>(ptr<int32_t>(segments), t, runs);
  check_launch("attention (segment runs)");
  return runs;
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

// Loads rows [r0, r0 + 32) of a (rows, hd) head into shared memory with row stride `stride`, as f32;
// rows past `rows` are zeros.
template <typename T>
__device__ void load_tile(float* dst, int stride, const T* src, int64_t r0, int64_t rows, int hd) {
  for (int e = threadIdx.x; e < kTile * hd; e += blockDim.x) {
    const int r = e / hd, d = e % hd;
    dst[r * stride + d] = r0 + r < rows ? ld(src + (r0 + r) * hd + d) : 0.f;
  }
}

// dK, dV of one key tile, over every query tile at or after it. Thread t owns the elements
// e = t + 256 m of the (32 keys) x (32 KD dims) tile.
template <typename T, int KD>
__global__ void __launch_bounds__(kThreads) attention_dkdv_kernel(FlashArgs<T> a, const float* delta, float* dk,
                                                                   float* dv) {
  extern __shared__ float sm[];
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
  extern __shared__ float sm[];
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

int64_t check_dims(const char* op, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& slopes,
                   const Tensor& segments, std::initializer_list<NamedArg> same_as_q) {
  check_float(op, "q", q, Device::CUDA);
  check_arg(op, "k", k, q.dtype, Device::CUDA);
  check_arg(op, "v", v, q.dtype, Device::CUDA);
  for (const NamedArg& a : same_as_q) check_arg(op, a.name, *a.tensor, q.dtype, Device::CUDA);
  if (slopes.numel()) check_f32(op, "slopes", slopes, Device::CUDA);
  CS_CHECK(q.ndim() == 4 && q.shape == k.shape && q.shape == v.shape) << q.shape.str() << k.shape.str() << v.shape.str();
  CS_CHECK(slopes.numel() == 0 || slopes.numel() == q.size(1)) << slopes.shape.str();
  if (segments.numel()) {
    check_arg(op, "segments", segments, DType::I32, Device::CUDA);
    CS_CHECK(segments.numel() == q.size(0) * q.size(2)) << segments.shape.str() << q.shape.str();
  }
  const int64_t hd = q.size(3);
  if (q.dtype != DType::F32 && hd % 2)
    throw Error(str("[", op, "] q ", q.shape.str(), ": a ", q.dtype == DType::BF16 ? "bf16" : "f16",
                    " head dim must be even, got ", hd));
  if (hd > kMaxHeadDim)
    throw Error(str("[", op, "] q ", q.shape.str(), ": head dim ", hd, " is over the CUDA kernel's ", kMaxHeadDim));
  return hd;
}
}  // namespace

void attention_forward(Ctx& c, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& slopes,
                       const Tensor& segments, const Tensor& o, const Tensor& lse) {
  check_dims("attention_forward", q, k, v, slopes, segments, {{"o", &o}});
  check_f32("attention_forward", "lse", lse, Device::CUDA);
  const int64_t b = q.size(0), h = q.size(1), t = q.size(2), hd = q.size(3);
  CS_CHECK(o.shape == q.shape && lse.numel() == b * h * t);
  if (!q.numel()) return;
  OpScratch scratch(c);
  const int32_t* runs = segment_runs(c, segments, b, t, scratch);
  with_float(q.dtype, [&](auto tt) {
    using T = decltype(tt);
    FlashArgs<T> a{ptr<T>(q), ptr<T>(k), ptr<T>(v), ptr<T>(o), nullptr, ptr<float>(lse),
                   slopes.numel() ? ptr<float>(slopes) : nullptr, runs,
                   t, t, 0, t * hd, t * hd, int(hd), int(h), 1.f / sqrtf(float(hd))};
    if constexpr (!std::is_same_v<T, float>) {
      if (tensor_core_attention(q.dtype, hd)) return tc_forward(c, a, b * h);
    }
    flash_forward(c, a, b * h);
  });
}

void attention_backward(Ctx& c, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& slopes,
                        const Tensor& segments, const Tensor& o, const Tensor& lse, const Tensor& dout,
                        const Tensor& dq, const Tensor& dk, const Tensor& dv) {
  check_dims("attention_backward", q, k, v, slopes, segments, {{"o", &o}, {"dout", &dout}});
  check_f32_args("attention_backward", Device::CUDA, {{"lse", &lse}, {"dq", &dq}, {"dk", &dk}, {"dv", &dv}});
  const int64_t b = q.size(0), h = q.size(1), t = q.size(2), hd = q.size(3);
  CS_CHECK(o.shape == q.shape && dout.shape == q.shape && dq.shape == q.shape && dk.shape == q.shape &&
           dv.shape == q.shape && lse.numel() == b * h * t);
  if (!q.numel()) return;
  const int64_t rows = b * h * t;
  OpScratch scratch(c);
  float* delta = scratch.take<float>(rows, "attention_backward (delta)");
  const int32_t* runs = segment_runs(c, segments, b, t, scratch);
  with_float(q.dtype, [&](auto tt) {
    using T = decltype(tt);
    attention_delta_kernel<T><<<blocks_for(rows, 8, 1 << 30), 256, 0, stream(c)>>>(ptr<T>(o), ptr<T>(dout), rows, hd,
                                                                                   delta);
    check_launch("attention_backward (delta)");
    FlashArgs<T> a{ptr<T>(q), ptr<T>(k), ptr<T>(v), nullptr, ptr<T>(dout), ptr<float>(lse),
                   slopes.numel() ? ptr<float>(slopes) : nullptr, runs,
                   t, t, 0, t * hd, t * hd, int(hd), int(h), 1.f / sqrtf(float(hd))};
    if constexpr (!std::is_same_v<T, float>) {
      if (tensor_core_attention(q.dtype, hd))
        return tc_backward(c, a, b * h, delta, ptr<float>(dq), ptr<float>(dk), ptr<float>(dv));
    }
    const dim3 grid(unsigned(b * h), unsigned((t + kTile - 1) / kTile));  // bh on x: no 65535 limit
    const size_t kv_bytes = size_t(kTile) * (hd + 1) * sizeof(float), qd_bytes = size_t(kTile) * hd * sizeof(float);
    const size_t dkdv_smem = 2 * kv_bytes + 2 * qd_bytes + 2 * size_t(kTile) * (kTile + 1) * sizeof(float) +
                             2 * size_t(kTile) * sizeof(float);
    const size_t dq_smem = 2 * kv_bytes + 2 * qd_bytes;
    with_head_dim(int(hd), [&](auto kd) {
      constexpr int KD = decltype(kd)::value;
      auto dkdv = attention_dkdv_kernel<T, KD>;
      auto dqk = attention_dq_kernel<T, KD>;
      check(cudaFuncSetAttribute(dkdv, cudaFuncAttributeMaxDynamicSharedMemorySize, int(dkdv_smem)),
            "attention_backward (shared memory)");
      check(cudaFuncSetAttribute(dqk, cudaFuncAttributeMaxDynamicSharedMemorySize, int(dq_smem)),
            "attention_backward (shared memory)");
      dkdv<<<grid, kThreads, dkdv_smem, stream(c)>>>(a, delta, ptr<float>(dk), ptr<float>(dv));
      check_launch("attention_backward (dk, dv)");
      dqk<<<grid, kThreads, dq_smem, stream(c)>>>(a, delta, ptr<float>(dq));
      check_launch("attention_backward (dq)");
    });
  });
}

template <typename T>
void flash_forward(Ctx& c, const FlashArgs<T>& a, int64_t bh) {
  const dim3 grid(unsigned(bh), unsigned((a.tq + kTile - 1) / kTile));  // bh on x: no 65535 limit
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

template void flash_forward<float>(Ctx&, const FlashArgs<float>&, int64_t);
template void flash_forward<bf16>(Ctx&, const FlashArgs<bf16>&, int64_t);
template void flash_forward<f16>(Ctx&, const FlashArgs<f16>&, int64_t);

}  // namespace cs::cuda
