// N consecutive elements of a storage dtype (f32, bf16, f16) loaded into, or stored from, N floats
// through accesses of up to 16 bytes (one ld.global.v4 / st.global.v4 per 16 bytes), for the
// memory-bound kernels: a thread with 16 bytes in flight per access instead of 2 or 4 keeps
// enough bytes moving to approach the GPU's memory bandwidth (Little's law: an H100 needs a few MB
// in flight, and a grid resident on it has ~270k threads). The caller guarantees that p is
// aligned to the access size (min(16, N * sizeof(T)) bytes) and checks it on the host
// (aligned16 on the base pointers, sizes whose offsets are multiples of N); N = 1 is the plain
// scalar path. No CUDA header: tests/cuda_emu/ runs the kernels that use it on the CPU (there
// each access is a memcpy whose alignment the emulation checks).
#pragma once
#include <cstdint>
#include <cstring>

namespace cs::cuda::vec {

// The elements of T one access moves: 16 bytes' worth, or N if fewer.
template <typename T, int N>
constexpr int per_access() {
  return int(16 / sizeof(T)) < N ? int(16 / sizeof(T)) : N;
}

// Whether every pointer is on a 16-byte boundary (what N-element accesses of up to 16 bytes need
// when, as the callers arrange, every offset is a multiple of N elements).
template <typename... P>
inline bool aligned16(const P*... p) {
  return ((reinterpret_cast<uintptr_t>(p) % 16 == 0) && ...);
}

// A width as a type, for generic lambdas: fn(Width<N>{}) instantiates fn's N-wide text.
template <int M>
struct Width {
  static constexpr int value = M;
};
// fn(Width<N>) when the N-wide path's sizes and pointers suit it, else fn(Width<1>).
template <int N, typename Fn>
inline void with_width(bool ok, Fn&& fn) {
  if (ok)
    fn(Width<N>{});
  else
    fn(Width<1>{});
}

// One access of B bytes (a power of two, at most 16) from / to memory: an aligned vector word on
// the GPU, a memcpy under the emulation (no aliasing of the pointee's type there).
template <int B>
struct Raw;
#ifndef CS_CUDA_EMULATION
template <> struct Raw<16> { using type = uint4; };
template <> struct Raw<8> { using type = uint2; };
template <> struct Raw<4> { using type = uint32_t; };
template <> struct Raw<2> { using type = uint16_t; };
#endif

template <int B>
__device__ __forceinline__ void copy_in(void* dst, const void* src) {
#ifndef CS_CUDA_EMULATION
  using W = typename Raw<B>::type;
  const W w = *static_cast<const W*>(src);
  memcpy(dst, &w, B);  // register to register: no memory access
#else
  ::emu::check_aligned(src, B);  // what the GPU would fault on
  std::memcpy(dst, src, B);
#endif
}
template <int B>
__device__ __forceinline__ void copy_out(void* dst, const void* src) {
#ifndef CS_CUDA_EMULATION
  using W = typename Raw<B>::type;
  W w;
  memcpy(&w, src, B);
  *static_cast<W*>(dst) = w;
#else
  ::emu::check_aligned(dst, B);
  std::memcpy(dst, src, B);
#endif
}

// x[i] = p[i] widened to float, i < N.
template <int N, typename T>
__device__ __forceinline__ void load(const T* p, float (&x)[N]) {
  constexpr int C = per_access<T, N>();
#pragma unroll
  for (int k = 0; k < N; k += C) {
    T t[C];
    copy_in<C * sizeof(T)>(t, p + k);
#pragma unroll
    for (int i = 0; i < C; ++i) x[k + i] = ld(t + i);
  }
}

// p[i] = x[i] rounded to T (nearest even), i < N.
template <int N, typename T>
__device__ __forceinline__ void store(T* p, const float (&x)[N]) {
  constexpr int C = per_access<T, N>();
#pragma unroll
  for (int k = 0; k < N; k += C) {
    T t[C];
#pragma unroll
    for (int i = 0; i < C; ++i) st(t + i, x[k + i]);
    copy_out<C * sizeof(T)>(p + k, t);
  }
}

}  // namespace cs::cuda::vec
