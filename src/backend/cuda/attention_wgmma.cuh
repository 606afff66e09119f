// The register-resident attention kernels (attention_mma_kernels.cuh, attention_mma_backward.cuh)
// on Hopper's warpgroup MMA: the WgMma engine. A block is two warpgroups (8 warps, 256 threads)
// over 128 fixed rows (queries, or keys in dK / dV), both reading each streamed 64-row tile (half
// the shared-memory and L2 traffic per product of one warpgroup per block); each of a tile's
// products is one chain of wgmma.mma_async over a warpgroup's 64 rows, where SyncMma has each warp
// do its 16 rows with mma.sync: the same accumulator layout per warp (wgmma.cuh), so the kernels'
// softmax, masks, P and dS code and their stores are unchanged. S-type products (Q K^T, K Q^T, V dO^T, dO V^T) take both operands from
// shared memory (K-major descriptors); the P- and dS-products take P or dS from registers and the
// other tile as an MN-major operand, so no tile is ever transposed. The tiles are unpadded 64 x HD
// in the 128-byte swizzle (cp.async writes them conflict-free; wgmma reads them conflict-free), so
// head dims 64 and 128 only. The backward kernels overlap a product with the P or dS arithmetic
// (kAsync in attention_mma_backward.cuh); the forward (wgmma_forward_kernel below) a product
// with the softmax. No ping-pong of the two warpgroups (FlashAttention-3's) and no TMA: the
// tiles come through cp.async as on sm_80.
#pragma once
#include "backend/cuda/attention_mma_backward.cuh"
#include "backend/cuda/wgmma.cuh"

// The products' loops unrolled (their accumulators must stay in registers); the host compiler of
// the emulation has no such pragma.
#ifdef CS_CUDA_EMULATION
#define CS_WG_UNROLL
#else
#define CS_WG_UNROLL _Pragma("unroll")
#endif

namespace cs::cuda::fa2 {

struct WgMma {
  static constexpr int kBlockRows = 128;  // two warpgroups, sharing each streamed tile
  static constexpr int kThreads = 256;
  static constexpr int kGroupRows = 64;
  static constexpr bool kQInRegisters = false;
  static constexpr size_t kAlignPad = 1024;  // the swizzle's atoms start on 1024 bytes
  template <int HD>
  __host__ __device__ static constexpr int tile_elems() { return kBr * HD; }
  // The fixed side: one 64-row tile per warpgroup, back to back.
  template <int HD>
  __host__ __device__ static constexpr int fixed_elems() { return kBlockRows * HD; }
  __device__ static unsigned char* align(unsigned char* smem) {
    return smem + ((1024u - (ptx::smem_addr(smem) & 1023u)) & 1023u);
  }
  template <typename T, int HD>
  __device__ static void load_tile(T* dst, const T* src, int64_t r0, int64_t rows) {
    static_assert(HD == 64 || HD == 128, "the 128-byte swizzle takes rows of 64 or 128 16-bit elements");
    constexpr int kChunks = HD / 8;  // 16 bytes each
    for (int e = threadIdx.x; e < kBr * kChunks; e += blockDim.x) {
      const int r = e / kChunks, c = e % kChunks;
      T* d = reinterpret_cast<T*>(reinterpret_cast<unsigned char*>(dst) + ptx::swizzled(r, c));
      if (r0 + r < rows) {
        ptx::cp_async16(d, src + (r0 + r) * HD + c * 8);
      } else {
        for (int i = 0; i < 8; ++i) d[i] = T(0.f);
      }
    }
  }
  template <typename T, int HD>
  __device__ static void load_fixed(T* dst, const T* src, int64_t r0, int64_t rows) {
    for (int g = 0; g < kBlockRows / 64; ++g) load_tile<T, HD>(dst + g * tile_elems<HD>(), src, r0 + 64 * g, rows);
  }
  __device__ static void tiles_landed() { ptx::fence_proxy_async(); }
  // The calling thread's warpgroup's tile of a fixed side.
  template <typename T, int HD>
  __device__ static const T* group_tile(const T* fixed) {
    return fixed + (threadIdx.x / 128) * tile_elems<HD>();
  }

  // K-major: rows 0..63 of the tile, columns 16 kk .. 16 kk + 15.
  __device__ static uint64_t k_major(const void* tile, int kk) {
    return ptx::make_desc(ptx::smem_addr(tile) + uint32_t(kk >> 2) * 8192u + uint32_t(kk & 3) * 32u, 16, 1024);
  }
  // MN-major: rows 16 kk .. 16 kk + 15 of the tile as K, its columns as N.
  __device__ static uint64_t mn_major(const void* tile, int kk) {
    return ptx::make_desc(ptx::smem_addr(tile) + uint32_t(kk) * 2048u, 8192, 1024);
  }

  // (No QOperand / hold_q / q_times_rows_t: the forward on WgMma is wgmma_forward_kernel below;
  // no synchronous rows_times_rows_t / packed_times_rows: kAsync.)
  static constexpr bool kAsync = true;
  // The products, issued as one committed group each and not waited for: acc and pa (the A
  // registers) may not be accessed at all, reads included, and the tiles not changed, until a
  // wait has seen the group complete (the PTX ISA leaves it undefined otherwise).
  template <typename T, int HD>
  __device__ static void issue_tile_times_rows_t(const T* a, const T* b, float (&acc)[8][4]) {
    ptx::fence_regs(acc);
    ptx::wgmma_fence();
    scores_group<T, HD>(a, b, acc);
  }
  template <typename T, int HD>
  __device__ static void issue_packed_times_rows(const uint32_t (&pa)[4][4], const T* m, float (&acc)[HD / 8][4]) {
    ptx::fence_regs(acc);
    ptx::fence_regs(pa);
    ptx::wgmma_fence();
    packed_group<T, HD>(pa, m, acc);
  }
  // The backward's two score products, S1 = A1 B1^T and S2 = A2 B2^T (A1, A2 fixed tiles, of
  // which the warpgroup's own), two groups, every register fence before the first.
  template <typename T, int HD>
  __device__ static void issue_scores_pair(const T* a1, const T* b1, float (&s1)[8][4], const T* a2, const T* b2,
                                           float (&s2)[8][4]) {
    ptx::fence_regs(s1);
    ptx::fence_regs(s2);
    ptx::wgmma_fence();
    scores_group<T, HD>(group_tile<T, HD>(a1), b1, s1);
    scores_group<T, HD>(group_tile<T, HD>(a2), b2, s2);
  }
  // Waits until at most N groups run, then pins the accumulators the completed ones wrote.
  template <int N, class... Acc>
  __device__ static void wait(Acc&... acc) {
    ptx::wgmma_wait<N>();
    (ptx::fence_regs(acc), ...);
  }
  // After the wait for the products that read them: A registers kept where they were.
  template <class... Regs>
  __device__ static void keep(Regs&... regs) {
    (ptx::keep_regs(regs), ...);
  }
  // S = A B^T and then acc += P M, two groups, with every register fence before the first
  // product: a register fence between them would be an instruction defining a product's input
  // while the other product runs, and ptxas serialises products for that.
  template <typename T, int HD>
  __device__ static void issue_both(const T* a, const T* b, float (&s)[8][4], const uint32_t (&pa)[4][4], const T* m,
                                    float (&acc)[HD / 8][4]) {
    ptx::fence_regs(s);
    ptx::fence_regs(acc);
    ptx::fence_regs(pa);
    ptx::wgmma_fence();
    scores_group<T, HD>(a, b, s);
    packed_group<T, HD>(pa, m, acc);
  }

 private:
  // The products alone (after the fences), committed as one group.
  template <typename T, int HD>
  __device__ static void scores_group(const T* a, const T* b, float (&acc)[8][4]) {
    CS_WG_UNROLL
    for (int kk = 0; kk < HD / 16; ++kk) ptx::wgmma_ss_n64<T>(acc, k_major(a, kk), k_major(b, kk), kk > 0);
    ptx::wgmma_commit();
  }
  template <typename T, int HD>
  __device__ static void packed_group(const uint32_t (&pa)[4][4], const T* m, float (&acc)[HD / 8][4]) {
    CS_WG_UNROLL
    for (int kk = 0; kk < 4; ++kk) ptx::wgmma_rs_t<T, HD>(acc, pa[kk], mn_major(m, kk));
    ptx::wgmma_commit();
  }
};

// The forward on WgMma with a product in flight during the softmax (FlashAttention-3's overlap
// within a warpgroup): at key tile j a warpgroup issues S_j = Q K_j^T, then O += P_{j-1} V_{j-1},
// waits for S_j alone, runs the softmax of S_j (P_j into registers of their own) while P_{j-1}
// V_{j-1} is computed, then waits for it and rescales O. So V lags K by a tile: the group of copies
// issued at step j holds K_{j+1} and V_j, each into the buffer freed two steps before (K_{j-1}'s,
// V_{j-2}'s), and step j waits for the one before (K_j, V_{j-1}); one more step after the last
// tile finishes its P V. Masks, softmax, rounding and stores are the other forward's
// (online_softmax, store_rows): the same results.
template <typename T, int HD>
__global__ void __launch_bounds__(WgMma::kThreads) wgmma_forward_kernel(FlashArgs<T> a) {
  using E = WgMma;
  CS_TC_SHARED(raw);
  unsigned char* smem = E::align(raw);
  constexpr int TE = E::tile_elems<HD>(), ND = HD / 8;
  T* sK = reinterpret_cast<T*>(smem);  // 2 buffers
  T* sV = sK + 2 * TE;                 // 2 buffers
  T* sQ = sV + 2 * TE;                 // the two warpgroups' query tiles
  const ForwardBlock<T> fb(a, E::kBlockRows);
  const auto [bh, q0, kh, vh, slope, runs, n_tiles, row, pos] = fb;
  E::load_fixed<T, HD>(sQ, a.q + bh * a.q_head_stride, q0, a.tq);
  if (n_tiles > 0) E::load_tile<T, HD>(sK, kh, 0, a.tk);
  ptx::cp_async_commit();
  const T* qt = E::group_tile<T, HD>(sQ);
  float o[ND][4];
  for (int n = 0; n < ND; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  uint32_t pa[4][4];  // the P of the tile whose P V is in flight

  // Step it's copies (K_{it+1}, V_it, into the buffers the last barrier freed), then the wait for
  // the previous step's (K_it, V_{it-1}) and the barrier that publishes them.
  auto tiles_for_step = [&](int it) {
    const int64_t k0 = int64_t(it) * kBc;
    if (it + 1 < n_tiles) E::load_tile<T, HD>(sK + ((it + 1) & 1) * TE, kh, k0 + kBc, a.tk);
    if (it < n_tiles) E::load_tile<T, HD>(sV + (it & 1) * TE, vh, k0, a.tk);
    ptx::cp_async_commit();
    ptx::cp_async_wait<1>();
    E::tiles_landed();
    __syncthreads();
  };
  // Every warpgroup takes every tile the block sees (a tile wholly past a warpgroup's rows gives
  // P = 0 and changes nothing), and the steady state below has no condition around a product:
  // ptxas serialises products issued or retired under conditions it cannot follow.
  float s[8][4], corr[2];
  if (n_tiles > 0) {  // step 0: S_0 and its softmax, no P V yet
    tiles_for_step(0);
    E::issue_tile_times_rows_t<T, HD>(qt, sK, s);
    E::wait<0>(s);
    online_softmax<T>(a, runs, slope, row, pos, 0, s, m, l, corr, pa);
    __syncthreads();  // K_0 is free for step 1's copies
  }
  // One step from 1 on: P_{it-1} is in pc, P_it goes to pn. Two sets of P registers taken in turn
  // (no copy from one to the other: ptxas serialises the products when registers a running one
  // reads are written in its stage, which a copy at the loop's end looks like).
  auto step = [&](int it, uint32_t (&pc)[4][4], uint32_t (&pn)[4][4]) {
    tiles_for_step(it);
    E::issue_both<T, HD>(qt, sK + (it & 1) * TE, s, pc, sV + ((it - 1) & 1) * TE, o);  // S_it; O += P_{it-1} V_{it-1}
    E::wait<1>(s);  // S_it is in s
    online_softmax<T>(a, runs, slope, row, pos, int64_t(it) * kBc, s, m, l, corr, pn);
    E::wait<0>(o);  // P_{it-1} V_{it-1} is in O
    E::keep(pc);
    for (int n = 0; n < ND; ++n)
      for (int e = 0; e < 4; ++e) o[n][e] *= corr[e >> 1];
    __syncthreads();  // K_it and V_{it-1} are free for the next step's copies
  };
  uint32_t pb[4][4];
  int it = 1;
  for (; it + 1 < n_tiles; it += 2) {
    step(it, pa, pb);
    step(it + 1, pb, pa);
  }
  const bool last_in_pb = it < n_tiles;  // (block-uniform) an odd step left: its P lands in pb
  if (last_in_pb) step(it, pa, pb);
  auto last_pv = [&](uint32_t (&pl)[4][4]) {
    tiles_for_step(n_tiles);
    E::issue_packed_times_rows<T, HD>(pl, sV + ((n_tiles - 1) & 1) * TE, o);
    E::wait<0>(o);
    E::keep(pl);
  };
  if (n_tiles > 0) {  // the last P V (a branch, not a reference to either set: they stay registers)
    if (last_in_pb) last_pv(pb);
    else last_pv(pa);
  }
  ptx::cp_async_wait<0>();
  store_rows<T, HD>(a, bh, row, m, l, o);
}

}  // namespace cs::cuda::fa2
