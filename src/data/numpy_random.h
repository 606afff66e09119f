// The numpy behaviour Megatron's dataset indices depend on (header only): the legacy random stream
// and numpy.sum's order. numpy.random.RandomState(seed) is MT19937 seeded by init_genrand(seed)
// (std::mt19937(seed) is the same generator), and RandomState.shuffle on a 1-D array is a
// Fisher-Yates pass (i = n-1 down to 1, swap a[i] with a[random_interval(i)]) whatever the dtype. random_interval is numpy's masked rejection sampler
// (numpy/random/src/distributions/distributions.c). Checked against numpy's own draws in
// tests/data/numpy_random_test.cpp (fixture from tools/reference/megatron_indices.py).
#pragma once
#include <cstdint>
#include <random>
#include <span>
#include <utility>

namespace cs {

class NumpyRandomState {
 public:
  // numpy accepts seeds 0 .. 2^32 - 1 (larger ones are a ValueError there; the caller checks).
  explicit NumpyRandomState(uint32_t seed) : mt_(seed) {}

  uint32_t next_uint32() { return uint32_t(mt_()); }
  // numpy's mt19937_next64: the first draw is the high half.
  uint64_t next_uint64() {
    uint64_t hi = next_uint32();
    return hi << 32 | next_uint32();
  }

  // A uniform integer in [0, MAX]: the smallest all-ones mask >= MAX applied to 32-bit draws
  // (64-bit draws when MAX does not fit 32 bits), redrawn while the value exceeds MAX. MAX 0
  // draws nothing.
  uint64_t random_interval(uint64_t max) {
    if (max == 0) return 0;
    uint64_t mask = max;
    for (int shift = 1; shift <= 32; shift *= 2) mask |= mask >> shift;
    uint64_t value;
    if (max <= 0xffffffffull) {
      while ((value = (next_uint32() & mask)) > max) {
      }
    } else {
      while ((value = (next_uint64() & mask)) > max) {
      }
    }
    return value;
  }

  // RandomState.shuffle(a) for a 1-D array of N elements.
  template <typename T>
  void shuffle(T* a, int64_t n) {
    for (int64_t i = n - 1; i > 0; --i) {
      const int64_t j = int64_t(random_interval(uint64_t(i)));
      std::swap(a[i], a[j]);
    }
  }

 private:
  std::mt19937 mt_;
};

// numpy.sum of a float64 array, in numpy's order (pairwise_sum in loops_utils.h: left to right
// below 8 elements, else 8 interleaved partial sums per block of up to 128, halves above that).
// Megatron normalises --split and --data-path weights with it, and the last bit of a weight can
// move a split boundary or a blending tie.
inline double numpy_sum(std::span<const double> a) {
  const size_t n = a.size();
  if (n < 8) {
    double r = 0.0;
    for (double x : a) r += x;
    return r;
  }
  if (n <= 128) {
    double r[8];
    for (size_t j = 0; j < 8; ++j) r[j] = a[j];
    size_t i = 8;
    for (; i < n - n % 8; i += 8)
      for (size_t j = 0; j < 8; ++j) r[j] += a[i + j];
    double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i];
    return res;
  }
  size_t half = n / 2;
  half -= half % 8;
  return numpy_sum(a.first(half)) + numpy_sum(a.subspan(half));
}

}  // namespace cs
