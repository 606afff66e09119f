// Elementwise helpers the model needs between layers: residual add, copy, zero, sum.
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

}  // namespace cs::cpu
