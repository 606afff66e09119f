// bf16 and IEEE fp16 <-> fp32 conversions (bit-exact, round-to-nearest-even on the way down).
// Used by weight loading and, later, the mixed-precision paths; no arithmetic in half precision.
#pragma once
#include <cstdint>
#include <cstring>

namespace cs {

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Branch-free (a select, no early return), so that loops over it vectorise.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const uint32_t nan = (u >> 16) | 0x40u;  // keep NaN quiet
  return uint16_t((u & 0x7fffffffu) > 0x7f800000u ? nan : rounded);
}

inline float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, u;
  if (exp == 0) {
    if (mant == 0) {
      u = sign;
    } else {  // subnormal: renormalise
      exp = 127 - 15 + 1;
      while (!(mant & 0x400u)) { mant <<= 1; --exp; }
      u = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | (mant << 13);
  } else {
    u = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// IEEE fp16 from fp32, round to nearest even; overflow gives inf, NaN stays NaN.
inline uint16_t f32_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return uint16_t(sign | 0x7e00u);            // NaN
  if (abs >= 0x477ff000u) return uint16_t(sign | 0x7c00u);           // >= 65520: inf
  if (abs < 0x38800000u) {                                            // below 2^-14: subnormal
    if (abs < 0x33000000u) return uint16_t(sign);                     // below 2^-25: zero
    const uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
    const int shift = 126 - int(abs >> 23);                           // 14..24
    const uint32_t half = mant >> shift, rest = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
    return uint16_t(sign | (half + (rest > mid || (rest == mid && (half & 1)))));
  }
  const uint32_t base = abs - 0x38000000u;                            // rebias 127 -> 15
  const uint32_t half = base >> 13, rest = base & 0x1fffu;
  return uint16_t(sign | (half + (rest > 0x1000u || (rest == 0x1000u && (half & 1)))));
}

}  // namespace cs
