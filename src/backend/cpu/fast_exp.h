// Straight-line float math for vector loops: fast_exp, and max_of (a lane-wise maximum).
// exp(x) for float in straight-line arithmetic, so that a `#pragma omp simd` loop over it becomes
// vector code (the C library's expf is a call per element: the softmax tiles of attention spent
// most of their time there). exp(x) = 2^n p(r) with n = round(x / ln 2), r = x - n ln 2 in two
// parts (Cody-Waite), p the degree-6 Taylor polynomial of exp on |r| <= ln2 / 2 (truncation error
// below 2.2e-8 relative), 2^n built in the exponent bits. Relative error within 2 ulp of expf
// over [-87, 88]; below -87.3 (including -inf: a masked score) the result is exactly 0, above 88.7
// it is +inf; NaN is not handled (scores are never NaN unless their inputs are).
#pragma once
#include <cstdint>
#include <cstring>

namespace cs::cpu {

inline float fast_exp(float x) {
  const float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  const float xc = x < -87.3f ? -87.3f : (x > 88.7f ? 88.7f : x);
  // Round to nearest by adding and removing 1.5 * 2^23 (a libm call would not vectorise).
  const float n = (xc * kLog2e + 12582912.f) - 12582912.f;
  const float r = (xc - n * kLn2Hi) - n * kLn2Lo;
  float p = 1.f / 720.f;
  p = p * r + 1.f / 120.f;
  p = p * r + 1.f / 24.f;
  p = p * r + 1.f / 6.f;
  p = p * r + 0.5f;
  p = p * r + 1.f;
  p = p * r + 1.f;
  const int32_t bits = (int32_t(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  const float y = p * scale;
  return x < -87.3f ? 0.f : (x > 88.7f ? __builtin_inff() : y);
}

// max(init, x[0], ..., x[n-1]) over 16 explicit lanes combined in a fixed order: vector code (GCC
// leaves a plain max loop scalar); the same result as the sequential loop (max is exact).
inline float max_of(const float* x, int64_t n, float init) {
  constexpr int kLanes = 16;
  const int64_t nb = n / kLanes * kLanes;
  float m[kLanes];
  for (int l = 0; l < kLanes; ++l) m[l] = init;
  for (int64_t j = 0; j < nb; j += kLanes)
    for (int l = 0; l < kLanes; ++l) m[l] = x[j + l] > m[l] ? x[j + l] : m[l];
  float mx = init;
  for (int l = 0; l < kLanes; ++l) mx = m[l] > mx ? m[l] : mx;
  for (int64_t j = nb; j < n; ++j) mx = x[j] > mx ? x[j] : mx;
  return mx;
}

}  // namespace cs::cpu
