// The sm_90a warpgroup tensor-core instructions (wgmma.mma_async) the Hopper attention kernels use
// (attention_wgmma.cuh), as inline PTX with the layouts written down (PTX ISA, "Asynchronous
// Warpgroup Level Matrix Multiply-Accumulate", register fragments, shared memory matrix layout,
// matrix descriptor). Under CS_CUDA_EMULATION tests/cuda_emu/wgmma_emulation.h defines the same
// functions from those definitions, so the kernels' tile layout and descriptors are checked on the CPU.
//
// A warpgroup is 4 consecutive warps (128 threads). wgmma m64nNk16: D (64 x N, f32) (+)= A (64 x 16)
// B (16 x N). Warp w of the group holds D's rows 16w .. 16w+15 in the layout of mma.sync m16n8's D,
// repeated over the N / 8 column blocks: with g = lane / 4, t = lane % 4, d[j][0..1] = (row 16w+g,
// cols 8j+2t, 8j+2t+1), d[j][2..3] = (row 16w+g+8, same cols). An A held in registers has mma.sync
// m16n8k16's A layout on each warp's 16 rows: so an accumulator, rounded and packed in pairs, is
// the next product's A (pack_a in attention_mma_kernels.cuh), as with mma.sync.
//
// Shared-memory operands are given by 64-bit descriptors: start address, leading- and
// stride-dimension byte offsets (LBO, SBO), swizzle mode. Every tile here is 64 rows x HD (64 or
// 128) of 16-bit elements in the 128-byte swizzle: HD / 64 "atoms" of 64 rows x 128 bytes (8 KB
// each), row r of an atom at r * 128 bytes, its 16-byte chunk c at chunk position c ^ (r % 8); the
// atoms start on 1024 bytes (the swizzle is of address bits 4-6 by bits 7-9). The same tile serves
// as both kinds of operand:
//  - K-major (the tile's rows are M or N, its columns K: Q, K, V, dO in S = Q K^T, dP = dO V^T):
//    SBO = 1024 (8 rows), LBO unused; the k-step kk's 16 columns start (kk % 4) * 32 bytes into
//    atom kk / 4;
//  - MN-major, imm-trans-b = 1 (the tile's rows are K, its columns N: V in O += P V, dO, Q, K in
//    the backward's products): SBO = 1024 (8 K rows), LBO = 8192 (from one atom of 64 columns to
//    the next); k-step kk starts at row 16 kk.
// The instructions run asynchronously: registers and shared memory they read must not change until
// wgmma.wait_group; wgmma.fence orders earlier register writes before them, and
// fence.proxy.async makes shared memory written by ordinary stores (and cp.async) visible to them.
#pragma once
#include <cstdint>
#include <type_traits>

#include "backend/cuda/mma_sync.cuh"

namespace cs::cuda::ptx {

// Byte offset of 16-byte chunk c (0 .. HD/8 - 1) of row r (0 .. 63) in a swizzled tile.
__host__ __device__ constexpr uint32_t swizzled(int r, int c) {
  return uint32_t(c >> 3) * 8192u + uint32_t(r) * 128u + (uint32_t((c & 7) ^ (r & 7)) << 4);
}
constexpr uint64_t kSwizzle128 = uint64_t(1) << 62;
__host__ __device__ constexpr uint64_t make_desc(uint32_t addr, uint32_t lbo, uint32_t sbo) {
  return uint64_t((addr & 0x3FFFFu) >> 4) | uint64_t((lbo & 0x3FFFFu) >> 4) << 16 |
         uint64_t((sbo & 0x3FFFFu) >> 4) << 32 | kSwizzle128;
}

#ifndef CS_CUDA_EMULATION
// wgmma exists on sm_90a only; the kernels are compiled for sm_80 too (one file, one set of
// templates), where these are never reached (the host takes them on compute capability 9.0 only).
#if defined(__CUDA_ARCH__) && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define CS_WGMMA_UNAVAILABLE 1
#endif

__device__ __forceinline__ void wgmma_fence() {
#ifndef CS_WGMMA_UNAVAILABLE
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void wgmma_commit() {
#ifndef CS_WGMMA_UNAVAILABLE
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}
// Waits until at most N committed groups are still running (they complete in order).
template <int N>
__device__ __forceinline__ void wgmma_wait() {
#ifndef CS_WGMMA_UNAVAILABLE
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#endif
}
// Shared memory written through the generic proxy (st.shared, cp.async) -> the async proxy (wgmma).
__device__ __forceinline__ void fence_proxy_async() {
#ifndef CS_WGMMA_UNAVAILABLE
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}
// Pins registers the asynchronous instructions read or write: the compiler may not move their
// uses across this point (before the fence, after the wait).
template <int N>
__device__ __forceinline__ void fence_regs(float (&d)[N][4]) {
#pragma unroll
  for (int j = 0; j < N; ++j)
    for (int e = 0; e < 4; ++e) asm volatile("" : "+f"(d[j][e])::"memory");
}
// Registers the instructions only read (an A operand): computed before this point.
template <int N>
__device__ __forceinline__ void fence_regs(const uint32_t (&r)[N][4]) {
#pragma unroll
  for (int j = 0; j < N; ++j)
    for (int e = 0; e < 4; ++e) asm volatile("" ::"r"(r[j][e]) : "memory");
}
// An A operand still being read by a running product, kept in its registers until this point
// (after the wait): without it the compiler may reuse them once the instruction has issued.
template <int N>
__device__ __forceinline__ void keep_regs(uint32_t (&r)[N][4]) {
#pragma unroll
  for (int j = 0; j < N; ++j)
    for (int e = 0; e < 4; ++e) asm volatile("" : "+r"(r[j][e])::"memory");
}

// Operand lists of the accumulators: 32 (n64) or 64 (n128) "+f" registers, d[j][e] in order.
#define CS_D4(j) "+f"(d[j][0]), "+f"(d[j][1]), "+f"(d[j][2]), "+f"(d[j][3])
#define CS_D32 CS_D4(0), CS_D4(1), CS_D4(2), CS_D4(3), CS_D4(4), CS_D4(5), CS_D4(6), CS_D4(7)
#define CS_D64 CS_D32, CS_D4(8), CS_D4(9), CS_D4(10), CS_D4(11), CS_D4(12), CS_D4(13), CS_D4(14), CS_D4(15)
#define CS_P32                                                                                    \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, " \
  "%20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}"
#define CS_P64                                                                                    \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, " \
  "%20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, "  \
  "%38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, "  \
  "%56, %57, %58, %59, %60, %61, %62, %63}"

// scale-d is a predicate; imm-scale-a, imm-scale-b 1 (no negation); imm-trans-a 0, imm-trans-b
// 0 (K-major B) in the descriptor form, 1 (MN-major B) in the register form.
#ifndef CS_WGMMA_UNAVAILABLE
#define CS_WG_SS(TY)                                                                            \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"                                    \
               "wgmma.mma_async.sync.aligned.m64n64k16.f32." TY "." TY " " CS_P32              \
               ", %32, %33, p, 1, 1, 0, 0;\n}\n"                                                \
               : CS_D32                                                                         \
               : "l"(da), "l"(db), "r"(int(accumulate)))
#define CS_WG_RS64(TY)                                                                          \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"                                    \
               "wgmma.mma_async.sync.aligned.m64n64k16.f32." TY "." TY " " CS_P32              \
               ", {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"                                  \
               : CS_D32                                                                         \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1))
#define CS_WG_RS128(TY)                                                                         \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"                                    \
               "wgmma.mma_async.sync.aligned.m64n128k16.f32." TY "." TY " " CS_P64             \
               ", {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"                                  \
               : CS_D64                                                                         \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1))
#else
#define CS_WG_SS(TY) __trap()
#define CS_WG_RS64(TY) __trap()
#define CS_WG_RS128(TY) __trap()
#endif

// D (64 x 64) (+)= A B, A and B K-major in shared memory (descriptors); accumulate: D's old
// value is added (scale-d), else overwritten. T: __nv_bfloat16 or __half.
template <typename T>
__device__ __forceinline__ void wgmma_ss_n64(float (&d)[8][4], uint64_t da, uint64_t db, bool accumulate) {
  if constexpr (std::is_same_v<T, __half>) CS_WG_SS("f16");
  else CS_WG_SS("bf16");
}
// D (64 x N) += A B, A in registers (a 64 x 16 step), B MN-major in shared memory; N = 64, 128.
template <typename T, int N>
__device__ __forceinline__ void wgmma_rs_t(float (&d)[N / 8][4], const uint32_t (&a)[4], uint64_t db) {
  static_assert(N == 64 || N == 128);
  if constexpr (N == 64 && std::is_same_v<T, __half>) CS_WG_RS64("f16");
  else if constexpr (N == 64) CS_WG_RS64("bf16");
  else if constexpr (std::is_same_v<T, __half>) CS_WG_RS128("f16");
  else CS_WG_RS128("bf16");
}
#undef CS_WG_SS
#undef CS_WG_RS64
#undef CS_WG_RS128
#undef CS_D4
#undef CS_D32
#undef CS_D64
#undef CS_P32
#undef CS_P64
#endif  // CS_CUDA_EMULATION

}  // namespace cs::cuda::ptx
