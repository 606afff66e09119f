// The register-resident flash-attention forward (FlashAttention-2's kernel design) and the
// fragment helpers the backward (attention_mma_backward.cuh) shares: bf16 / f16 q,
// k, v, head dim 32, 64 or 128, on mma.sync m16n8k16 with the fragment layouts of mma_sync.cuh.
// A block takes 64 queries (4 warps of 16 rows) and walks the key tiles of 64; each warp keeps
// its Q fragments, its scores, its P and its output accumulators in registers (the D layout of
// two 8-column products is the A layout of the next product, so P goes from the softmax into P V
// without shared memory); Q passes through shared memory once, on its way into registers, and K
// and V tile by tile: copied with cp.async into two buffers, the next tile's copy in flight while
// this one is used. Per row the online softmax
// (max, rescale, sum of the rounded P) runs on the 4 lanes that hold it (two shuffles).
// The masks, the ALiBi bias, the rounding of P and lse are those of the other kernels
// (attention_tc_kernels.cuh): the same results up to the order of the sums.
// The kernels take their products from an engine (SyncMma below; WgMma, the same on Hopper's
// warpgroup MMA, in attention_wgmma.cuh): the loops, masks and softmax are one text for both.
// In a header so that tests/cuda_emu/ runs its text on the CPU against a float64 reference.
#pragma once
#ifndef CS_CUDA_EMULATION
#include "backend/cuda/common.cuh"
#include "backend/cuda/mma_sync.cuh"
#endif
#include "backend/cuda/attention_args.cuh"

namespace cs::cuda::fa2 {

constexpr int kBr = 64;  // queries per block, 16 per warp
constexpr int kBc = 64;  // keys per tile
constexpr int kWarps = 4;
constexpr int kFa2Threads = kWarps * 32;

// Shared-memory rows are padded by 16 bytes: the 8 rows an ldmatrix reads then fall on distinct banks.
template <int HD>
__host__ __device__ constexpr int ld_s() { return HD + 8; }

// Rows [r0, r0 + 64) of a (rows, HD) matrix into dst (row stride ld_s) through cp.async; rows
// past `rows` are zeroed with plain stores. Every thread of the block takes part.
template <typename T, int HD>
__device__ __forceinline__ void load_tile_async(T* dst, const T* src, int64_t r0, int64_t rows) {
  constexpr int kChunks = HD / 8;  // 16 bytes each
  for (int e = threadIdx.x; e < kBr * kChunks; e += blockDim.x) {
    const int r = e / kChunks, c = e % kChunks;
    T* d = dst + r * ld_s<HD>() + c * 8;
    if (r0 + r < rows) {
      ptx::cp_async16(d, src + (r0 + r) * HD + c * 8);
    } else {
      for (int i = 0; i < 8; ++i) d[i] = T(0.f);
    }
  }
}

// A warp's A fragments of 16 rows x HD from shared memory (row stride ld_s), 16 columns per step.
template <typename T, int HD>
__device__ __forceinline__ void load_a_frags(const T* a, uint32_t (&af)[HD / 16][4]) {
  const int lane = threadIdx.x & 31;
  for (int kk = 0; kk < HD / 16; ++kk)
    ptx::ldsm_x4(af[kk], a + (lane & 15) * ld_s<HD>() + kk * 16 + (lane >> 4) * 8);
}

// acc (16 x 64) = A (16 x HD, fragments) B^T, B's 64 rows x HD in shared memory: 8 blocks of 8
// columns, one ldmatrix giving the B fragments of two blocks.
template <typename T, int HD>
__device__ __forceinline__ void frags_times_rows_t(const uint32_t (&af)[HD / 16][4], const T* b, float (&acc)[8][4]) {
  const int lane = threadIdx.x & 31;
  for (int n = 0; n < 8; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;
  for (int kk = 0; kk < HD / 16; ++kk)
    for (int n2 = 0; n2 < 4; ++n2) {
      uint32_t r[4];
      ptx::ldsm_x4(r, b + (n2 * 16 + (lane >> 4) * 8 + (lane & 7)) * ld_s<HD>() + kk * 16 + ((lane >> 3) & 1) * 8);
      ptx::mma16816<T>(acc[2 * n2], af[kk], r[0], r[1]);
      ptx::mma16816<T>(acc[2 * n2 + 1], af[kk], r[2], r[3]);
    }
}

// acc (16 x HD) += P (16 x 64, packed A fragments of 4 16-column steps) M, M's 64 rows x HD in
// shared memory, read through ldmatrix.trans: two 8-column blocks of the result per load.
template <typename T, int HD>
__device__ __forceinline__ void packed_times_rows(const uint32_t (&pa)[4][4], const T* m, float (&acc)[HD / 8][4]) {
  const int lane = threadIdx.x & 31;
  for (int kk = 0; kk < 4; ++kk)
    for (int d2 = 0; d2 < HD / 16; ++d2) {
      uint32_t r[4];
      ptx::ldsm_x4_t(r, m + (kk * 16 + ((lane >> 3) & 1) * 8 + (lane & 7)) * ld_s<HD>() + d2 * 16 + (lane >> 4) * 8);
      ptx::mma16816<T>(acc[2 * d2], pa[kk], r[0], r[1]);
      ptx::mma16816<T>(acc[2 * d2 + 1], pa[kk], r[2], r[3]);
    }
}

// Rounds a 16 x 64 accumulator to T and packs it as the A fragments of the next product (the D
// layout of 8-column blocks 2k, 2k+1 is the A layout of 16-column step k). `f` maps (block n,
// element e, value) to the value to round.
template <typename T, typename F>
__device__ __forceinline__ void pack_a(const float (&acc)[8][4], uint32_t (&pa)[4][4], F&& f) {
  for (int n = 0; n < 8; ++n) {
    pa[n >> 1][(n & 1) * 2] = ptx::pack2<T>(f(n, 0, acc[n][0]), f(n, 1, acc[n][1]));      // row g
    pa[n >> 1][(n & 1) * 2 + 1] = ptx::pack2<T>(f(n, 2, acc[n][2]), f(n, 3, acc[n][3]));  // row g + 8
  }
}
// Element e of 8-column block n of packed fragments, as pack_a placed it.
template <typename T>
__device__ __forceinline__ float packed_at(const uint32_t (&pa)[4][4], int n, int e) {
  const uint32_t r = pa[n >> 1][(n & 1) * 2 + (e >> 1)];
  return (e & 1) ? ptx::unpack_hi<T>(r) : ptx::unpack_lo<T>(r);
}

__device__ __forceinline__ bool fa2_visible(int64_t i, int64_t pos, int64_t j, int64_t tk, const int32_t* runs) {
  return j < tk && j <= pos && (!runs || runs[j] == runs[i]);
}

// The backward's P of query i and key j from their score s (training's layout: positions are the
// indices): exp(s scale + ALiBi - lse), 0 where masked.
template <typename T>
__device__ __forceinline__ float recompute_p(const FlashArgs<T>& a, const int32_t* runs, float slope, int64_t i,
                                             int64_t j, float s, float lse) {
  return i < a.tq && fa2_visible(i, i, j, a.tk, runs) ? __expf(s * a.scale + slope * float(j - i) - lse) : 0.f;
}

// What a forward block of `block_rows` queries (blockIdx.y) of head bh (blockIdx.x) works on: its
// head's K and V, ALiBi slope and packed-sample runs, its first query, the key tiles any of its rows
// sees; and the calling warp's two rows (row[h], at positions pos[h]).
template <typename T>
struct ForwardBlock {
  int64_t bh, q0;
  const T *kh, *vh;
  float slope;
  const int32_t* runs;
  int n_tiles;
  int64_t row[2], pos[2];
  __device__ ForwardBlock(const FlashArgs<T>& a, int block_rows) {
    bh = blockIdx.x;
    q0 = int64_t(blockIdx.y) * block_rows;
    kh = a.k + bh * a.kv_head_stride;
    vh = a.v + bh * a.kv_head_stride;
    slope = a.slopes ? a.slopes[bh % a.heads] : 0.f;
    runs = a.segments ? a.segments + bh / a.heads * a.tk : nullptr;
    const int64_t k_end = min(a.tk, a.q_pos0 + min(a.tq, q0 + block_rows));  // keys any row of the block sees
    n_tiles = int((k_end + kBc - 1) / kBc);
    const int64_t w0 = q0 + (threadIdx.x / 32) * 16;  // the warp's first row
    for (int h = 0; h < 2; ++h) row[h] = w0 + ((threadIdx.x & 31) >> 2) + 8 * h, pos[h] = a.q_pos0 + row[h];
  }
};

// The forward's online softmax over one 64-key tile of a warp's scores s (its rows row[h] at
// positions pos[h]): scale, ALiBi bias and masks; the rows' new maxima m (a row's 64 scores are
// on 4 lanes: two shuffles); corr, the factor the output accumulated so far takes (l is rescaled
// here); P, rounded to T, packed as the A fragments of P V, with l summing the rounded P that
// P V multiplies.
template <typename T>
__device__ __forceinline__ void online_softmax(const FlashArgs<T>& a, const int32_t* runs, float slope,
                                               const int64_t (&row)[2], const int64_t (&pos)[2], int64_t k0,
                                               const float (&s)[8][4], float (&m)[2], float (&l)[2],
                                               float (&corr)[2], uint32_t (&pa)[4][4]) {
  const int t4 = threadIdx.x & 3;
  float mx[2] = {-INFINITY, -INFINITY};
  float x[8][4];  // (s itself is left as the product wrote it: a wgmma's registers, see attention_wgmma.cuh)
  for (int n = 0; n < 8; ++n)
    for (int e = 0; e < 4; ++e) {
      const int h = e >> 1;
      const int64_t j = k0 + n * 8 + 2 * t4 + (e & 1);
      float v = -INFINITY;
      if (row[h] < a.tq && fa2_visible(row[h], pos[h], j, a.tk, runs)) v = s[n][e] * a.scale + slope * float(j - pos[h]);
      x[n][e] = v;
      mx[h] = fmaxf(mx[h], v);
    }
  for (int h = 0; h < 2; ++h) {
    mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 1));
    mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 2));
    const float m_new = fmaxf(m[h], mx[h]);
    corr[h] = m_new == -INFINITY ? 1.f : __expf(m[h] - m_new);
    m[h] = m_new;
    l[h] *= corr[h];
  }
  pack_a<T>(x, pa, [&](int, int e, float v) {
    const float p = v == -INFINITY ? 0.f : __expf(v - m[e >> 1]);
    T pt;
    st(&pt, p);
    l[e >> 1] += ld(&pt);
    return p;
  });
}

// The forward's end for a warp's rows: O / l (rounded to T) and lse = m + log l.
template <typename T, int HD>
__device__ __forceinline__ void store_rows(const FlashArgs<T>& a, int64_t bh, const int64_t (&row)[2],
                                           const float (&m)[2], float (&l)[2], const float (&o)[HD / 8][4]) {
  const int t4 = threadIdx.x & 3;
  for (int h = 0; h < 2; ++h) {
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 1);
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 2);
  }
  for (int h = 0; h < 2; ++h) {
    if (row[h] >= a.tq) continue;
    const float inv = l[h] > 0.f ? 1.f / l[h] : 0.f;
    T* out = a.o + bh * a.q_head_stride + row[h] * HD;
    for (int n = 0; n < HD / 8; ++n) {
      st(out + n * 8 + 2 * t4, o[n][2 * h] * inv);
      st(out + n * 8 + 2 * t4 + 1, o[n][2 * h + 1] * inv);
    }
    if (a.lse && t4 == 0) a.lse[bh * a.tq + row[h]] = m[h] + logf(l[h]);
  }
}

// How a block's products are done: SyncMma, here, on mma.sync by warps (each warp's 16 rows),
// tiles in rows padded to ld_s; WgMma (attention_wgmma.cuh) on wgmma by the block's warpgroup
// (its 64 rows), tiles in the 128-byte swizzle. The kernels below are written against this:
//   kBlockRows, kThreads: the rows of a block's fixed side (its queries in the forward and dQ,
//     its keys in dK / dV), 16 per warp; the other side streams through in tiles of 64 rows;
//   kGroupRows: the rows one product covers (what a skip condition must be uniform over);
//   tile_elems<HD>(), fixed_elems<HD>(): the elements of a 64-row streamed tile and of the fixed
//     one in shared memory; kAlignPad, align(): the bytes the tiles' base may need to start where
//     the layout requires;
//   load_tile, load_fixed: rows [r0, r0 + 64) (or kBlockRows) of a (rows, HD) matrix into a
//     tile by cp.async (zeros past rows);
//   tiles_landed(): after a thread's cp.async wait, before the barrier that publishes the tiles;
//   kQInRegisters, QOperand, hold_q, q_times_rows_t: the forward's Q, held across the key tiles
//     (SyncMma only: the forward on WgMma is a kernel of its own, attention_wgmma.cuh);
//   rows_times_rows_t: acc (the group's rows x 64) = A B^T, A the group's rows of a fixed tile, B a
//     streamed tile;
//   packed_times_rows: acc (the group's rows x HD) += P M, P packed A fragments, M a tile;
//   kAsync: the products run asynchronously (WgMma: issue_scores_pair, issue_packed_times_rows,
//     wait, keep in place of the two above), and the backward kernels overlap them with the P and
//     dS arithmetic.
struct SyncMma {
  static constexpr int kBlockRows = 64;
  static constexpr int kThreads = kFa2Threads;
  static constexpr int kGroupRows = 16;
  static constexpr bool kQInRegisters = true;
  static constexpr bool kAsync = false;
  static constexpr size_t kAlignPad = 0;
  template <int HD>
  __host__ __device__ static constexpr int tile_elems() { return kBr * ld_s<HD>(); }
  template <int HD>
  __host__ __device__ static constexpr int fixed_elems() { return tile_elems<HD>(); }
  __device__ static unsigned char* align(unsigned char* smem) { return smem; }
  template <typename T, int HD>
  __device__ static void load_tile(T* dst, const T* src, int64_t r0, int64_t rows) {
    load_tile_async<T, HD>(dst, src, r0, rows);
  }
  template <typename T, int HD>
  __device__ static void load_fixed(T* dst, const T* src, int64_t r0, int64_t rows) {
    load_tile_async<T, HD>(dst, src, r0, rows);
  }
  __device__ static void tiles_landed() {}
  template <typename T, int HD>
  using QOperand = uint32_t[HD / 16][4];
  template <typename T, int HD>
  __device__ static void hold_q(const T* sq, uint32_t (&qf)[HD / 16][4]) {
    load_a_frags<T, HD>(sq + (threadIdx.x / 32) * 16 * ld_s<HD>(), qf);
  }
  template <typename T, int HD>
  __device__ static void q_times_rows_t(const uint32_t (&qf)[HD / 16][4], const T* b, float (&acc)[8][4]) {
    frags_times_rows_t<T, HD>(qf, b, acc);
  }
  template <typename T, int HD>
  __device__ static void rows_times_rows_t(const T* a, const T* b, float (&acc)[8][4]) {
    uint32_t af[HD / 16][4];
    load_a_frags<T, HD>(a + (threadIdx.x / 32) * 16 * ld_s<HD>(), af);
    frags_times_rows_t<T, HD>(af, b, acc);
  }
  template <typename T, int HD>
  __device__ static void packed_times_rows(const uint32_t (&pa)[4][4], const T* m, float (&acc)[HD / 8][4]) {
    fa2::packed_times_rows<T, HD>(pa, m, acc);
  }
};

// The forward's shared memory: two buffers each of K and V, and Q's tile. With SyncMma, Q passes
// through the second K buffer on its way into registers (70 KB at head dim 128, so two blocks fit
// an A100's SM); with WgMma it stays in its own (97 KB: 128 queries).
template <int HD, class E = SyncMma>
__host__ __device__ constexpr size_t forward_smem() {
  return (size_t(4) * E::template tile_elems<HD>() + (E::kQInRegisters ? 0 : E::template fixed_elems<HD>())) * 2 +
         E::kAlignPad;
}

template <typename T, int HD, class E = SyncMma>
__global__ void __launch_bounds__(E::kThreads) fa2_forward_kernel(FlashArgs<T> a) {
  CS_TC_SHARED(raw);
  unsigned char* smem = E::align(raw);
  constexpr int TE = E::template tile_elems<HD>(), ND = HD / 8;
  T* sK = reinterpret_cast<T*>(smem);                      // 2 buffers
  T* sV = sK + 2 * TE;                                     // 2 buffers
  T* sQ = E::kQInRegisters ? sK + TE : sV + 2 * TE;  // K's second buffer until Q is in registers
  const ForwardBlock<T> fb(a, E::kBlockRows);
  const auto [bh, q0, kh, vh, slope, runs, n_tiles, row, pos] = fb;
  E::template load_fixed<T, HD>(sQ, a.q + bh * a.q_head_stride, q0, a.tq);
  if (n_tiles > 0) {
    E::template load_tile<T, HD>(sK, kh, 0, a.tk);
    E::template load_tile<T, HD>(sV, vh, 0, a.tk);
  }
  ptx::cp_async_commit();
  ptx::cp_async_wait<0>();
  E::tiles_landed();
  __syncthreads();
  typename E::template QOperand<T, HD> qop;
  E::template hold_q<T, HD>(sQ, qop);
  __syncthreads();  // every warp has its Q fragments before the first prefetch overwrites them

  const int64_t g0 = q0 + (threadIdx.x / 32) * 16 / E::kGroupRows * E::kGroupRows;  // the warp's group's first row
  const int64_t group_last = a.q_pos0 + min(a.tq - 1, g0 + E::kGroupRows - 1);     // the group's last position
  float o[ND][4];
  for (int n = 0; n < ND; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};

  for (int it = 0; it < n_tiles; ++it) {
    const int64_t k0 = int64_t(it) * kBc;
    const int buf = it & 1;
    if (it + 1 < n_tiles) {  // the next tile into the other buffer (freed by the last barrier)
      E::template load_tile<T, HD>(sK + (buf ^ 1) * TE, kh, k0 + kBc, a.tk);
      E::template load_tile<T, HD>(sV + (buf ^ 1) * TE, vh, k0 + kBc, a.tk);
    }
    ptx::cp_async_commit();
    ptx::cp_async_wait<1>();  // everything but the newest group: this tile has landed
    E::tiles_landed();
    __syncthreads();
    if (k0 <= group_last && g0 < a.tq) {  // (group-uniform) some row of the group sees a key of the tile
      const T* sk = sK + buf * TE;
      const T* sv = sV + buf * TE;
      float s[8][4];  // S = Q K^T
      E::template q_times_rows_t<T, HD>(qop, sk, s);
      float corr[2];
      uint32_t pa[4][4];
      online_softmax<T>(a, runs, slope, row, pos, k0, s, m, l, corr, pa);
      for (int n = 0; n < ND; ++n)
        for (int e = 0; e < 4; ++e) o[n][e] *= corr[e >> 1];
      E::template packed_times_rows<T, HD>(pa, sv, o);  // O += P V
    }
    __syncthreads();  // every warp is done with this buffer before the next prefetch overwrites it
  }
  ptx::cp_async_wait<0>();  // nothing left in flight at exit (the last commit was empty)
  store_rows<T, HD>(a, bh, row, m, l, o);
}

}  // namespace cs::cuda::fa2
