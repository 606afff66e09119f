// The one closeness helper (STYLE §6.3): per element |a - e| <= atol + rtol * |e|, and per tensor
// cosine similarity >= min_cosine (1 - 1e-6 unless a dtype's table in tolerances.h says otherwise);
// on failure it reports the worst index, both values, max abs / rel error and the first few pairs.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

namespace cs::test {

template <typename A, typename E>
::testing::AssertionResult all_close(const A* actual, const E* expected, int64_t n, double atol,
                                     double rtol, const std::string& what = "",
                                     double min_cosine = 1 - 1e-6) {
  int64_t worst = -1, bad = 0;
  double worst_excess = 0, max_abs = 0, max_rel = 0, dot = 0, na = 0, ne = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double a = double(actual[i]), e = double(expected[i]), err = std::fabs(a - e);
    dot += a * e; na += a * a; ne += e * e;
    max_abs = std::max(max_abs, err);
    if (e != 0) max_rel = std::max(max_rel, err / std::fabs(e));
    const double excess = err - (atol + rtol * std::fabs(e));
    if (!(excess <= 0)) {  // catches NaN too
      ++bad;
      if (worst < 0 || excess > worst_excess || std::isnan(excess)) { worst = i; worst_excess = excess; }
    }
  }
  const double cosine = (na > 0 && ne > 0) ? dot / std::sqrt(na * ne) : 1.0;
  if (bad == 0 && (n == 0 || cosine >= min_cosine || ne < 1e-30))
    return ::testing::AssertionSuccess();
  std::ostringstream os;
  os.precision(9);
  os << what << ": " << bad << "/" << n << " elements outside atol " << atol << " rtol " << rtol
     << "; cosine " << cosine << " (floor " << min_cosine << "); max abs " << max_abs
     << ", max rel " << max_rel;
  if (worst >= 0)
    os << "; worst [" << worst << "] got " << double(actual[worst]) << " want " << double(expected[worst]);
  os << "; first pairs:";
  for (int64_t i = 0; i < std::min<int64_t>(n, 4); ++i)
    os << " (" << double(actual[i]) << ", " << double(expected[i]) << ")";
  return ::testing::AssertionFailure() << os.str();
}

template <typename A, typename E>
::testing::AssertionResult all_close(const std::vector<A>& a, const std::vector<E>& e, double atol,
                                     double rtol, const std::string& what = "",
                                     double min_cosine = 1 - 1e-6) {
  if (a.size() != e.size())
    return ::testing::AssertionFailure() << what << ": size " << a.size() << " vs " << e.size();
  return all_close(a.data(), e.data(), int64_t(a.size()), atol, rtol, what, min_cosine);
}

// Max |x| of a vector (used to scale absolute tolerances of gradients).
template <typename T>
double max_abs(const std::vector<T>& v) {
  double m = 0;
  for (const T& x : v) m = std::max(m, std::fabs(double(x)));
  return m;
}

}  // namespace cs::test
