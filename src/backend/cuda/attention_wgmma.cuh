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
// head dims 64 and 128 only. Each product waits for its own result (wgmma.wait_group 0): no
// overlap of one product with the softmax of another yet (FlashAttention-3's ping-pong), and no
// TMA: the tiles come through cp.async as on sm_80.
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

  template <typename T, int HD>
  struct QOperand {
    const T* tile;
  };
  template <typename T, int HD>
  __device__ static void hold_q(const T* sq, QOperand<T, HD>& q) { q.tile = group_tile<T, HD>(sq); }
  template <typename T, int HD>
  __device__ static void q_times_rows_t(const QOperand<T, HD>& q, const T* b, float (&acc)[8][4]) {
    tile_times_rows_t<T, HD>(q.tile, b, acc);
  }
  template <typename T, int HD>
  __device__ static void rows_times_rows_t(const T* a, const T* b, float (&acc)[8][4]) {
    tile_times_rows_t<T, HD>(group_tile<T, HD>(a), b, acc);
  }
  // acc = A B^T, A (64 rows) and B tiles.
  template <typename T, int HD>
  __device__ static void tile_times_rows_t(const T* a, const T* b, float (&acc)[8][4]) {
    ptx::fence_regs(acc);
    ptx::wgmma_fence();
    CS_WG_UNROLL
    for (int kk = 0; kk < HD / 16; ++kk) ptx::wgmma_ss_n64<T>(acc, k_major(a, kk), k_major(b, kk), kk > 0);
    ptx::wgmma_commit();
    ptx::wgmma_wait<0>();
    ptx::fence_regs(acc);
  }
  template <typename T, int HD>
  __device__ static void packed_times_rows(const uint32_t (&pa)[4][4], const T* m, float (&acc)[HD / 8][4]) {
    ptx::fence_regs(acc);
    ptx::fence_regs(pa);
    ptx::wgmma_fence();
    CS_WG_UNROLL
    for (int kk = 0; kk < 4; ++kk) ptx::wgmma_rs_t<T, HD>(acc, pa[kk], mn_major(m, kk));
    ptx::wgmma_commit();
    ptx::wgmma_wait<0>();
    ptx::fence_regs(acc);
  }
};

}  // namespace cs::cuda::fa2
