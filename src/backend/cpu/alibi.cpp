// ALiBi slopes (Press et al. 2022, "Train short, test long"), with Baichuan-13B's rule for head
// counts that are not a power of two (its _get_interleave): take the closest lower power of two's
// slopes, then every other slope of twice that count, up to n.
#include <cmath>
#include <vector>

#include "backend/backend.h"

namespace cs {

namespace {
std::vector<double> power_of_two_slopes(int64_t n) {
  // start = 2^(-2^-(log2(n) - 3)) = 2^(-8/n); slope_i = start^(i+1)
  const double start = std::pow(2.0, -std::pow(2.0, -(std::log2(double(n)) - 3.0)));
  std::vector<double> s(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) s[size_t(i)] = start * std::pow(start, double(i));
  return s;
}
}  // namespace

void alibi_slopes(int64_t n_heads, float* out) {
  CS_CHECK(n_heads > 0);
  const int64_t p = int64_t(1) << int64_t(std::floor(std::log2(double(n_heads))));
  std::vector<double> s = power_of_two_slopes(p);
  if (p != n_heads) {
    std::vector<double> extra = power_of_two_slopes(2 * p);
    for (int64_t i = 0; i < n_heads - p; ++i) s.push_back(extra[size_t(2 * i)]);
  }
  for (int64_t i = 0; i < n_heads; ++i) out[i] = float(s[size_t(i)]);
}

}  // namespace cs
