// The register-resident flash-attention backward (FlashAttention-2's loops; the fragment layouts
// and helpers of attention_mma_kernels.cuh): bf16 / f16, head dim 32, 64 or 128. Deterministic
// without atomics, as the other backward kernels: one kernel per key tile accumulates dK and dV
// over the query tiles at or after it, another per query tile accumulates dQ over the key tiles up
// to the causal limit; both recompute the scores. Each warp holds its accumulators (dK and dV of
// its 16 keys, or dQ of its 16 queries) in registers for the whole kernel, and its P and dS in
// registers as packed A fragments: P = exp(s - lse) and dS = P (dP - D) scale, both rounded to T
// before their products (dS scaled first, for f16's range), as in the wmma kernels. The other
// side's tiles (Q and dO, or K and V) pass through shared memory, double-buffered with cp.async.
// In a header so that tests/cuda_emu/ runs its text on the CPU against a float64 reference.
#pragma once
#include "backend/cuda/attention_mma_kernels.cuh"

namespace cs::cuda::fa2 {

// Shared memory: the fixed tile pair and two buffers of the streamed pair (and, for dK / dV, two
// buffers of the query tile's lse and D).
template <int HD, class E = SyncMma>
__host__ __device__ constexpr size_t dkdv_smem() {
  return (size_t(2) * E::template fixed_elems<HD>() + 4 * E::template tile_elems<HD>()) * 2 + 4 * size_t(kBr) * 4 +
         E::kAlignPad;
}
template <int HD, class E = SyncMma>
__host__ __device__ constexpr size_t dq_smem() {
  return (size_t(2) * E::template fixed_elems<HD>() + 4 * E::template tile_elems<HD>()) * 2 + E::kAlignPad;
}

// Writes a warp's 16 x HD f32 accumulator (rows r0 + g, r0 + g + 8) into out (rows, HD); rows
// past `rows` are not written.
template <int HD>
__device__ __forceinline__ void store_acc(const float (&acc)[HD / 8][4], float* out, int64_t r0, int64_t rows) {
  const int lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
  for (int h = 0; h < 2; ++h) {
    const int64_t r = r0 + g + 8 * h;
    if (r >= rows) continue;
    for (int n = 0; n < HD / 8; ++n) {
      out[r * HD + n * 8 + 2 * t4] = acc[n][2 * h];
      out[r * HD + n * 8 + 2 * t4 + 1] = acc[n][2 * h + 1];
    }
  }
}

// dK, dV of one key tile (warp w: keys k0 + 16w .. + 15) over the query tiles at or after it.
template <typename T, int HD, class E = SyncMma>
__global__ void __launch_bounds__(E::kThreads) fa2_dkdv_kernel(FlashArgs<T> a, const float* delta, float* dk, float* dv) {
  CS_TC_SHARED(raw);
  unsigned char* smem = E::align(raw);
  constexpr int TE = E::template tile_elems<HD>(), FE = E::template fixed_elems<HD>(), ND = HD / 8;
  T* sK = reinterpret_cast<T*>(smem);
  T* sV = sK + FE;
  T* sQ = sV + FE;         // 2 buffers
  T* sdO = sQ + 2 * TE;    // 2 buffers
  float* sL = reinterpret_cast<float*>(sdO + 2 * TE);  // 2 x 64 lse
  float* sD = sL + 2 * kBr;                                 // 2 x 64 D
  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
  const int64_t bh = blockIdx.x, b = bh / a.heads, k0 = int64_t(blockIdx.y) * E::kBlockRows, t_len = a.tk;
  const float slope = a.slopes ? a.slopes[bh % a.heads] : 0.f;
  const int32_t* runs = a.segments ? a.segments + b * t_len : nullptr;
  const T* qh = a.q + bh * a.q_head_stride;
  const T* doh = a.dout + bh * a.q_head_stride;
  const float* lse = a.lse + bh * a.tq;
  const float* dl = delta + bh * a.tq;
  // The query tiles that see a key of this tile: from the one holding position k0 on.
  const int64_t q_first = k0 / kBr * kBr;
  const int n_tiles = q_first < a.tq ? int((a.tq - q_first + kBr - 1) / kBr) : 0;
  auto load_queries = [&](int it, int buf) {
    const int64_t q0 = q_first + int64_t(it) * kBr;
    E::template load_tile<T, HD>(sQ + buf * TE, qh, q0, a.tq);
    E::template load_tile<T, HD>(sdO + buf * TE, doh, q0, a.tq);
    if (threadIdx.x < kBr) {  // plain loads: visible after the barrier that precedes their use
      const int64_t i = q0 + threadIdx.x;
      sL[buf * kBr + threadIdx.x] = i < a.tq ? lse[i] : 0.f;
      sD[buf * kBr + threadIdx.x] = i < a.tq ? dl[i] : 0.f;
    }
  };
  E::template load_fixed<T, HD>(sK, a.k + bh * a.kv_head_stride, k0, t_len);
  E::template load_fixed<T, HD>(sV, a.v + bh * a.kv_head_stride, k0, t_len);
  if (n_tiles > 0) load_queries(0, 0);
  ptx::cp_async_commit();

  float dkacc[ND][4], dvacc[ND][4];
  for (int n = 0; n < ND; ++n)
    for (int e = 0; e < 4; ++e) dkacc[n][e] = dvacc[n][e] = 0.f;
  const int64_t key[2] = {k0 + warp * 16 + g, k0 + warp * 16 + g + 8};
  const int64_t gk0 = k0 + warp * 16 / E::kGroupRows * E::kGroupRows;  // the warp's group's first key
  for (int it = 0; it < n_tiles; ++it) {
    const int buf = it & 1;
    const int64_t q0 = q_first + int64_t(it) * kBr;
    if (it + 1 < n_tiles) load_queries(it + 1, buf ^ 1);
    ptx::cp_async_commit();
    ptx::cp_async_wait<1>();
    E::tiles_landed();
    __syncthreads();
    if (gk0 < t_len && q0 + kBr - 1 >= gk0) {  // (group-uniform) a query of the tile sees a key of the group
      const T* q = sQ + buf * TE;
      const T* dO = sdO + buf * TE;
      const float* L = sL + buf * kBr;
      const float* D = sD + buf * kBr;
      float acc[8][4];
      uint32_t pa[4][4], da[4][4];  // P^T, and dS^T = P^T (dP^T - D) scale, rounded
      auto make_p = [&] {
        pack_a<T>(acc, pa, [&](int n, int e, float s) {
          const int c = n * 8 + 2 * t4 + (e & 1);
          return recompute_p(a, runs, slope, q0 + c, key[e >> 1], s, L[c]);
        });
      };
      auto make_ds = [&](const float (&dpt)[8][4]) {
        pack_a<T>(dpt, da, [&](int n, int e, float dp) {
          return packed_at<T>(pa, n, e) * (dp - D[n * 8 + 2 * t4 + (e & 1)]) * a.scale;
        });
      };
      if constexpr (E::kAsync) {  // P^T formed while dP^T is computed, dS^T while dV is
        float dpt[8][4];
        E::template issue_scores_pair<T, HD>(sK, q, acc, sV, dO, dpt);  // S^T = K Q^T; dP^T = V dO^T
        E::template wait<1>(acc);
        make_p();
        // dV's product reads a copy of P^T: dS^T reads pa meanwhile, and the PTX ISA leaves any
        // access (reads too) to a running product's A registers undefined.
        uint32_t pv[4][4];
        for (int i = 0; i < 4; ++i)
          for (int r = 0; r < 4; ++r) pv[i][r] = pa[i][r];
        E::keep(pv);  // its own registers, not pa's
        E::template issue_packed_times_rows<T, HD>(pv, dO, dvacc);  // dV += P^T dO
        E::template wait<1>(dpt);
        make_ds(dpt);
        E::template issue_packed_times_rows<T, HD>(da, q, dkacc);  // dK += dS^T Q
        E::template wait<0>(dvacc, dkacc);
        E::keep(pv, da);
      } else {
        E::template rows_times_rows_t<T, HD>(sK, q, acc);  // S^T = K Q^T (rows: keys; columns: queries)
        make_p();
        E::template packed_times_rows<T, HD>(pa, dO, dvacc);  // dV += P^T dO
        E::template rows_times_rows_t<T, HD>(sV, dO, acc);      // dP^T = V dO^T
        make_ds(acc);
        E::template packed_times_rows<T, HD>(da, q, dkacc);  // dK += dS^T Q
      }
    }
    __syncthreads();  // every warp is done with this buffer before the next prefetch overwrites it
  }
  ptx::cp_async_wait<0>();
  store_acc<HD>(dkacc, dk + bh * t_len * HD, k0 + warp * 16, t_len);
  store_acc<HD>(dvacc, dv + bh * t_len * HD, k0 + warp * 16, t_len);
}

// dQ of one query tile (warp w: queries q0 + 16w .. + 15) over the key tiles up to the causal limit.
template <typename T, int HD, class E = SyncMma>
__global__ void __launch_bounds__(E::kThreads) fa2_dq_kernel(FlashArgs<T> a, const float* delta, float* dq) {
  CS_TC_SHARED(raw);
  unsigned char* smem = E::align(raw);
  constexpr int TE = E::template tile_elems<HD>(), FE = E::template fixed_elems<HD>(), ND = HD / 8;
  T* sQ = reinterpret_cast<T*>(smem);
  T* sdO = sQ + FE;
  T* sK = sdO + FE;       // 2 buffers
  T* sV = sK + 2 * TE;    // 2 buffers
  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
  const int64_t bh = blockIdx.x, b = bh / a.heads, q0 = int64_t(blockIdx.y) * E::kBlockRows, t_len = a.tk;
  const float slope = a.slopes ? a.slopes[bh % a.heads] : 0.f;
  const int32_t* runs = a.segments ? a.segments + b * t_len : nullptr;
  const T* kh = a.k + bh * a.kv_head_stride;
  const T* vh = a.v + bh * a.kv_head_stride;
  const int64_t k_end = min(t_len, min(a.tq, q0 + E::kBlockRows));
  const int n_tiles = int((k_end + kBc - 1) / kBc);
  E::template load_fixed<T, HD>(sQ, a.q + bh * a.q_head_stride, q0, a.tq);
  E::template load_fixed<T, HD>(sdO, a.dout + bh * a.q_head_stride, q0, a.tq);
  if (n_tiles > 0) {
    E::template load_tile<T, HD>(sK, kh, 0, t_len);
    E::template load_tile<T, HD>(sV, vh, 0, t_len);
  }
  ptx::cp_async_commit();

  const int64_t w0 = q0 + warp * 16;
  const int64_t g0 = q0 + warp * 16 / E::kGroupRows * E::kGroupRows;  // the warp's group's first row
  const int64_t group_last = min(a.tq - 1, g0 + E::kGroupRows - 1);
  int64_t row[2];
  float lse[2], dd[2];
  for (int h = 0; h < 2; ++h) {
    row[h] = w0 + g + 8 * h;
    lse[h] = row[h] < a.tq ? a.lse[bh * a.tq + row[h]] : 0.f;
    dd[h] = row[h] < a.tq ? delta[bh * a.tq + row[h]] : 0.f;
  }
  float dqacc[ND][4];
  for (int n = 0; n < ND; ++n) dqacc[n][0] = dqacc[n][1] = dqacc[n][2] = dqacc[n][3] = 0.f;
  for (int it = 0; it < n_tiles; ++it) {
    const int64_t k0 = int64_t(it) * kBc;
    const int buf = it & 1;
    if (it + 1 < n_tiles) {
      E::template load_tile<T, HD>(sK + (buf ^ 1) * TE, kh, k0 + kBc, t_len);
      E::template load_tile<T, HD>(sV + (buf ^ 1) * TE, vh, k0 + kBc, t_len);
    }
    ptx::cp_async_commit();
    ptx::cp_async_wait<1>();
    E::tiles_landed();
    __syncthreads();
    if (k0 <= group_last && g0 < a.tq) {  // (group-uniform)
      const T* k = sK + buf * TE;
      const T* v = sV + buf * TE;
      float acc[8][4];
      uint32_t pa[4][4], da[4][4];  // P, and dS = P (dP - D) scale, rounded
      auto make_p = [&] {
        pack_a<T>(acc, pa, [&](int n, int e, float s) {
          return recompute_p(a, runs, slope, row[e >> 1], k0 + n * 8 + 2 * t4 + (e & 1), s, lse[e >> 1]);
        });
      };
      auto make_ds = [&](const float (&dpm)[8][4]) {
        pack_a<T>(dpm, da, [&](int n, int e, float dp) { return packed_at<T>(pa, n, e) * (dp - dd[e >> 1]) * a.scale; });
      };
      if constexpr (E::kAsync) {  // P formed while dP is computed
        float dpm[8][4];
        E::template issue_scores_pair<T, HD>(sQ, k, acc, sdO, v, dpm);  // S = Q K^T; dP = dO V^T
        E::template wait<1>(acc);
        make_p();
        E::template wait<0>(dpm);
        make_ds(dpm);
        E::template issue_packed_times_rows<T, HD>(da, k, dqacc);  // dQ += dS K
        E::template wait<0>(dqacc);
        E::keep(da);
      } else {
        E::template rows_times_rows_t<T, HD>(sQ, k, acc);  // S = Q K^T
        make_p();
        E::template rows_times_rows_t<T, HD>(sdO, v, acc);  // dP = dO V^T
        make_ds(acc);
        E::template packed_times_rows<T, HD>(da, k, dqacc);  // dQ += dS K
      }
    }
    __syncthreads();
  }
  ptx::cp_async_wait<0>();
  store_acc<HD>(dqacc, dq + bh * a.tq * HD, q0 + warp * 16, a.tq);
}

}  // namespace cs::cuda::fa2
