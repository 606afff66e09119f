// bf16 storage for the CPU kernels under --bf16: loads widen to f32 exactly, stores round to
// nearest even (core/half.h's conversions, branch-free so the loops vectorise). Kernels that
// accept either dtype for an argument are templates over the element type (float or Bf16) and
// use load / store; every kernel still computes in f32.
#pragma once
#include <cstdint>

#include "core/half.h"
#include "core/tensor.h"

namespace cs::cpu {

// A bf16 element: the top 16 bits of an f32.
struct Bf16 {
  uint16_t bits;
};
static_assert(sizeof(Bf16) == 2);

inline float load(const float* p) { return *p; }
inline float load(const Bf16* p) { return bf16_to_f32(p->bits); }
inline void store(float* p, float v) { *p = v; }
inline void store(Bf16* p, float v) { p->bits = f32_to_bf16(v); }

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
