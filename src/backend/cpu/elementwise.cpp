// Elementwise helpers and reductions: residual add, copy, zero, scale, sum, sum of squares.
#include <cstring>

#include "backend/cpu/ops.h"

namespace cs::cpu {

void add_inplace(Tensor& y, const Tensor& x) {
  CS_CHECK(y.numel() == x.numel()) << y.shape.str() << x.shape.str();
  const int64_t n = y.numel();
  float* yp = y.f32();
  const float* xp = x.f32();
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) yp[i] += xp[i];
}

void copy(const Tensor& x, Tensor& y) {
  CS_CHECK(y.nbytes() == x.nbytes()) << y.shape.str() << x.shape.str();
  if (x.data != y.data) std::memcpy(y.data, x.data, x.nbytes());
}

void zero(Tensor& x) { std::memset(x.data, 0, x.nbytes()); }

double sum(const Tensor& x) {
  double s = 0.0;
  const float* p = x.f32();
  for (int64_t i = 0; i < x.numel(); ++i) s += p[i];
  return s;
}

double sum_squares(const Tensor& x) {
  // Fixed static partition and a sum of the partials in thread order: deterministic for a given
  // thread count.
  const int64_t n = x.numel();
  const float* p = x.f32();
  double s = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += double(p[i]) * double(p[i]);
  return s;
}

void scale(Tensor& x, float alpha) {
  const int64_t n = x.numel();
  float* p = x.f32();
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) p[i] *= alpha;
}

}  // namespace cs::cpu
