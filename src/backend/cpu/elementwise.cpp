// Elementwise ops: residual add and scale. (Reductions are in reduce.cpp, dtype conversion in
// cast.cpp; copy and zero are Backend members.) x, y: any shape, f32.
#include "backend/cpu/ops.h"
#include "backend/op_check.h"

namespace cs::cpu {

void add_inplace(Ctx&, const Tensor& y, const Tensor& x) {
  check_f32_args("add_inplace", Device::CPU, {{"y", &y}, {"x", &x}});
  CS_CHECK(y.numel() == x.numel()) << y.shape.str() << x.shape.str();
  const int64_t n = y.numel();
  float* yp = y.f32();
  const float* xp = x.f32();
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) yp[i] += xp[i];
}

void scale(Ctx&, const Tensor& x, float alpha) {
  check_f32("scale", "x", x, Device::CPU);
  const int64_t n = x.numel();
  float* p = x.f32();
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) p[i] *= alpha;
}

}  // namespace cs::cpu
