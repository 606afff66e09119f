#include "core/philox.h"

#include <cmath>

namespace cs {

PhiloxBlock philox4x32(uint64_t key, uint64_t counter_lo, uint64_t counter_hi) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;   // multipliers
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;   // Weyl key increments
  uint32_t c0 = uint32_t(counter_lo), c1 = uint32_t(counter_lo >> 32);
  uint32_t c2 = uint32_t(counter_hi), c3 = uint32_t(counter_hi >> 32);
  uint32_t k0 = uint32_t(key), k1 = uint32_t(key >> 32);
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = uint64_t(kM0) * c0, p1 = uint64_t(kM1) * c2;
    uint32_t n0 = uint32_t(p1 >> 32) ^ c1 ^ k0, n1 = uint32_t(p1);
    uint32_t n2 = uint32_t(p0 >> 32) ^ c3 ^ k1, n3 = uint32_t(p0);
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += kW0; k1 += kW1;
  }
  return {c0, c1, c2, c3};
}

uint64_t philox_key(uint64_t seed, std::string_view name) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : name) { h ^= ch; h *= 1099511628211ull; }
  PhiloxBlock b = philox4x32(seed, h, 0x636875616e737064ull);  // "chuanspd": domain separation
  return (uint64_t(b[1]) << 32) | b[0];
}

double philox_normal(uint64_t key, uint64_t index) {
  PhiloxBlock b = philox4x32(key, index);
  double u1 = uniform_open(b[0]), u2 = uniform_open(b[1]);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

void philox_fill_normal(float* out, int64_t n, uint64_t key, uint64_t first, float mean, float std) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = float(mean + std * philox_normal(key, first + uint64_t(i)));
}

}  // namespace cs
