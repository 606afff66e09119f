// bf16 storage for the CPU kernels under --bf16: loads widen to f32 exactly, stores round to
// nearest even (core/half.h's rule, written branch-free so the loops vectorise). Kernels that
// accept either dtype for an argument are templates over the element type (float or Bf16) and
// use load / store; every kernel still computes in f32.
#pragma once
#include <cstdint>
#include <cstring>

#include "core/tensor.h"

namespace cs::cpu {

// A bf16 element: the top 16 bits of an f32.
struct Bf16 {
  uint16_t bits;
};
static_assert(sizeof(Bf16) == 2);

inline float load(const float* p) { return *p; }
inline float load(const Bf16* p) {
  const uint32_t u = uint32_t(p->bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline void store(float* p, float v) { *p = v; }
inline void store(Bf16* p, float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const uint32_t nan = (u >> 16) | 0x40u;  // a NaN stays a (quiet) NaN
  p->bits = uint16_t((u & 0x7fffffffu) > 0x7f800000u ? nan : rounded);
}

// y[i] = round(x[i]) for n elements, on the calling thread (callers split work over threads).
inline void to_bf16(const float* x, Bf16* y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) store(y + i, x[i]);
}

// The typed data pointer of an f32 or bf16 tensor (the caller has checked the dtype).
template <typename T>
T* data_as(const Tensor& t) {
  return static_cast<T*>(t.data);
}

// Calls fn(float{}) or fn(Bf16{}) for an f32 or bf16 tensor: the kernel's element type.
template <typename Fn>
decltype(auto) with_f32_or_bf16(const Tensor& t, Fn&& fn) {
  if (t.dtype == DType::BF16) return fn(Bf16{});
  return fn(float{});
}

}  // namespace cs::cpu
