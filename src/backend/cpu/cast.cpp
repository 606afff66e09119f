// Dtype conversion, y = x in y's dtype: f32 -> bf16 / f16 rounds to nearest even (NaN stays NaN,
// f16 overflow gives inf), bf16 / f16 -> f32 is exact (core/half.h); the same dtype is a copy.
// No other pair: the CPU computes in f32 and the half types are storage only, so bf16 <-> f16 or
// an integer dtype is a cs::Error naming both. x, y: any shapes of equal element count.
#include <fmt/core.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "backend/cpu/ops.h"
#include "backend/op_check.h"
#include "core/half.h"

namespace cs::cpu {

namespace {
template <typename From, typename To, typename Fn>
void convert(const void* x, void* y, int64_t n, Fn fn) {
  const From* xp = static_cast<const From*>(x);
  To* yp = static_cast<To*>(y);
#pragma omp parallel for simd schedule(static) if (n > (int64_t(1) << 15))
  for (int64_t i = 0; i < n; ++i) yp[i] = fn(xp[i]);
}
}  // namespace

void cast(Ctx&, const Tensor& x, const Tensor& y) {
  check_arg("cast", "x", x, x.dtype, Device::CPU);
  check_arg("cast", "y", y, y.dtype, Device::CPU);
  check_cast_pair(x, y);
  const DType from = x.dtype, to = y.dtype;
  const int64_t n = x.numel();
  if (from == to) {
    if (x.data != y.data && n) std::memmove(y.data, x.data, x.nbytes());
  } else if (to == DType::BF16) {
    convert<float, uint16_t>(x.data, y.data, n, [](float v) { return f32_to_bf16(v); });
  } else if (to == DType::F16) {
    convert<float, uint16_t>(x.data, y.data, n, [](float v) { return f32_to_f16(v); });
  } else if (from == DType::BF16) {
    convert<uint16_t, float>(x.data, y.data, n, [](uint16_t v) { return bf16_to_f32(v); });
  } else {
    convert<uint16_t, float>(x.data, y.data, n, [](uint16_t v) { return f16_to_f32(v); });
  }
}

}  // namespace cs::cpu
