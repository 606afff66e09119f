// Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11), the
// counter-based RNG behind every random number in ChuanSpeed. A value depends only on
// (key, counter), never on call order, so the same seed gives the same parameters and dropout
// masks for every TP/PP/DP layout: init is keyed by (seed, parameter name) and counted by the
// global element index.
#pragma once
#include <array>
#include <cstdint>
#include <string_view>

namespace cs {

using PhiloxBlock = std::array<uint32_t, 4>;

// One Philox-4x32-10 block for a 64-bit key and a 128-bit counter.
PhiloxBlock philox4x32(uint64_t key, uint64_t counter_lo, uint64_t counter_hi = 0);

// A stable 64-bit key from a seed and a name (FNV-1a of the name, mixed with the seed).
uint64_t philox_key(uint64_t seed, std::string_view name);

// Uniform in (0, 1) from a 32-bit word: never 0 or 1, so log() is safe.
inline double uniform_open(uint32_t w) { return (double(w) + 0.5) * (1.0 / 4294967296.0); }

// Standard normal for element `index` of stream `key` (Box-Muller on the block's first two words).
double philox_normal(uint64_t key, uint64_t index);

// Fills out[i] = mean + std * N(0,1) for global indices [first, first + n).
void philox_fill_normal(float* out, int64_t n, uint64_t key, uint64_t first, float mean, float std);

}  // namespace cs
