// Helpers for the op tests: deterministic random inputs and fp32 <-> double copies.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

#include "core/tensor.h"

namespace cs::test {

inline std::vector<double> randn(size_t n, double scale, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> dist(0.0, 1.0);
  std::vector<double> v(n);
  for (auto& x : v) x = double(float(scale * dist(rng)));  // exactly representable in fp32
  return v;
}

inline std::vector<float> to_f32(const std::vector<double>& v) { return {v.begin(), v.end()}; }

inline Tensor t(std::vector<float>& v, Shape s) { return Tensor(v.data(), s); }
inline Tensor ti(std::vector<int32_t>& v, Shape s) { return Tensor(v.data(), s, DType::I32); }

}  // namespace cs::test
