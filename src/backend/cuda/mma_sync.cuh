// The sm_80 warp-level tensor-core instructions the register-resident attention kernels use, as
// inline PTX with their fragment layouts written down (PTX ISA, "Matrix fragments for mma.m16n8k16"
// and "ldmatrix"). Under CS_CUDA_EMULATION (tests/cuda_emu/) the emulation defines the same
// functions by these layouts, so the kernels' index arithmetic is checked on the CPU.
//
// mma16816: D (16 x 8, f32) += A (16 x 16, bf16 / f16, row-major) B (16 x 8, col-major). With
// g = lane / 4 and t = lane % 4, a lane holds
//   A: a[0] = (row g, cols 2t, 2t+1), a[1] = (row g+8, cols 2t, 2t+1), a[2] = (row g, cols 2t+8, 2t+9),
//      a[3] = (row g+8, cols 2t+8, 2t+9), two elements per 32-bit register, the lower column in the
//      low half;
//   B: b0 = (rows 2t, 2t+1; col g), b1 = (rows 2t+8, 2t+9; col g);
//   D: d[0], d[1] = (row g, cols 2t, 2t+1), d[2], d[3] = (row g+8, cols 2t, 2t+1).
// So the D of two neighbouring 8-column products, rounded and packed in pairs, is the A fragment of
// the next product over those 16 columns: P never leaves the registers.
// ldsm_x4: four 8 x 8 matrices of 16-bit elements from shared memory; lane l gives the address of
// row l % 8 of matrix l / 8 (16 bytes, 16-byte aligned); register i of lane (g, t) receives matrix
// i's (row g, cols 2t, 2t+1); ldsm_x4_t (.trans) its (rows 2t, 2t+1; col g).
// cp_async16: a 16-byte global -> shared copy that completes at cp_async_wait<N> (all but the N
// most recently committed groups).
#pragma once
#ifndef CS_CUDA_EMULATION
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace cs::cuda::ptx {

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// A 32-bit pair's bits (memcpy: no access through another type).
template <typename V>
__device__ __forceinline__ uint32_t bits32(const V& v) {
  static_assert(sizeof(V) == 4);
  uint32_t r;
  memcpy(&r, &v, 4);
  return r;
}

// Two values rounded to T (nearest even), lo in the low half.
template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <>
__device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
  return bits32(__floats2bfloat162_rn(lo, hi));
}
template <>
__device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
  return bits32(__floats2half2_rn(lo, hi));
}

// The two values of a pair (pack2's inverse, exact).
template <typename T>
__device__ __forceinline__ float unpack_lo(uint32_t r);
template <typename T>
__device__ __forceinline__ float unpack_hi(uint32_t r);
template <>
__device__ __forceinline__ float unpack_lo<__nv_bfloat16>(uint32_t r) {
  return __uint_as_float(r << 16);
}
template <>
__device__ __forceinline__ float unpack_hi<__nv_bfloat16>(uint32_t r) {
  return __uint_as_float(r & 0xffff0000u);
}
template <>
__device__ __forceinline__ float unpack_lo<__half>(uint32_t r) {
  return __half2float(__ushort_as_half(static_cast<unsigned short>(r & 0xffffu)));
}
template <>
__device__ __forceinline__ float unpack_hi<__half>(uint32_t r) {
  return __half2float(__ushort_as_half(static_cast<unsigned short>(r >> 16)));
}

template <typename T>
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);
template <>
__device__ __forceinline__ void mma16816<__nv_bfloat16>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                                        uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma16816<__half>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p))
               : "memory");
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p))
               : "memory");
}

__device__ __forceinline__ void cp_async16(void* dst_smem, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_addr(dst_smem)),
               "l"(__cvta_generic_to_global(src))
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

}  // namespace cs::cuda::ptx
#endif
