// fast_exp (backend/cpu/fast_exp.h) against the float64 exp: relative error within 4e-7 (2 ulp of
// float; measured below) over [-87, 88] on a dense grid and on random points, exactly 0 for
// -inf and anything below -87.3 (masked attention scores), +inf above 88.7, 1 at 0.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "backend/cpu/fast_exp.h"

namespace cs {
namespace {

TEST(FastExp, WithinTwoUlpOfExpAndExactAtTheEdges) {
  double worst = 0;
  float at = 0;
  std::mt19937 gen(7);
  std::uniform_real_distribution<float> u(-87.f, 88.f);
  for (int i = 0; i < 2000000; ++i) {
    const float x = i < 1000000 ? -87.f + 175.f * float(i) / 1e6f : u(gen);
    const double want = std::exp(double(x)), got = double(cpu::fast_exp(x));
    const double rel = std::fabs(got - want) / want;
    if (rel > worst) {
      worst = rel;
      at = x;
    }
  }
  std::printf("[fast_exp] worst relative error %.3g at x = %.7g\n", worst, double(at));
  EXPECT_LT(worst, 4e-7) << "at x = " << at;
  EXPECT_EQ(cpu::fast_exp(-std::numeric_limits<float>::infinity()), 0.f);
  EXPECT_EQ(cpu::fast_exp(-100.f), 0.f);
  EXPECT_EQ(cpu::fast_exp(0.f), 1.f);
  EXPECT_EQ(cpu::fast_exp(100.f), std::numeric_limits<float>::infinity());
}

}  // namespace
}  // namespace cs
