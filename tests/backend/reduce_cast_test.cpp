// Reductions (sum, sum_squares, count_zeros into an F64 tensor in a fixed order: the same bits for
// any thread count) and casts (f32 <-> bf16 / f16, round to nearest even), on every backend of the build.
#include "backend_suite.h"

namespace cs {
namespace {
using test::all_close;
using test::OnDevice;
using test::randn;
using test::to_f32;

// ---------------------------------------------------------------------------------------------
// Reductions: sum and sum_squares into an F64 [1] tensor, in a fixed order.

CS_BACKEND_SUITE(Reduce);

// Multiples of 2^-10 below 4 in magnitude: every partial sum (and sum of squares) of 1e5 of them
// is exact in double, so any summation order gives exactly the double loop's value.
TEST_P(Reduce, SumAndSumSquaresOfExactValuesEqualDoubleLoops) {
  const int64_t n = 100003;
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) x[size_t(i)] = float((i * 7919) % 8191 - 4095) / 1024.f;
  double s = 0, ss = 0;
  for (float v : x) {
    s += v;
    ss += double(v) * v;
  }
  Tensor xt = dev.upload(x, {n}), out = dev.alloc({1}, DType::F64);
  ops().sum(ctx(), xt, out);
  EXPECT_EQ(dev.scalar(out), s);
  ops().sum_squares(ctx(), xt, out);
  EXPECT_EQ(dev.scalar(out), ss);
  EXPECT_EQ(read_f64(ctx(), out), std::vector<double>{ss});
}

TEST_P(Reduce, SumAndSumSquaresOfNormalsNearDoubleLoops) {
  for (int64_t n : {0, 1, 17, 16384, 16385, 99991}) {
    auto x = randn(size_t(n), 3, 111);
    double s = 0, ss = 0, abs_sum = 0;
    for (double v : x) {
      s += v;
      ss += v * v;
      abs_sum += std::fabs(v);
    }
    Tensor xt = dev.upload(x, {n}), out = dev.upload(std::vector<double>{42.0}, {1}, DType::F64);
    ops().sum(ctx(), xt, out);
    EXPECT_NEAR(dev.scalar(out), s, tol::kF64SumRtol * abs_sum) << "n " << n;
    ops().sum_squares(ctx(), xt, out);
    EXPECT_NEAR(dev.scalar(out), ss, tol::kF64SumRtol * ss) << "n " << n;
  }
}

// Megatron's num zeros (grad.numel() - torch.count_nonzero(grad)): +0 and -0 count, NaN, inf and
// the smallest subnormal do not; over block boundaries, an unaligned start and tails.
TEST_P(Reduce, CountZerosCountsWhatCountNonzeroLeavesOut) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity(),
              tiny = std::numeric_limits<float>::denorm_min();
  for (int64_t n : {0, 1, 5, 16384, 16385, 40003}) {
    std::vector<float> x = to_f32(randn(size_t(n), 1, 141));
    int64_t zeros = 0;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t k = (i * 2654435761) % 7;
      if (k == 0) x[size_t(i)] = 0.f;
      if (k == 1) x[size_t(i)] = -0.f;
      if (k == 2) x[size_t(i)] = (i % 3 == 0) ? nan : (i % 3 == 1) ? inf : tiny;
      zeros += x[size_t(i)] == 0.f;
    }
    Tensor xt = dev.upload(x, {n}), out = dev.alloc({1}, DType::F64);
    ops().count_zeros(ctx(), xt, out);
    EXPECT_EQ(dev.scalar(out), double(zeros)) << "n " << n;
    if (n > 1) {  // a view that starts one element in (not on 16 bytes)
      ops().count_zeros(ctx(), xt.slice_rows(1, n), out);
      EXPECT_EQ(dev.scalar(out), double(zeros - (x[0] == 0.f))) << "n " << n << " from 1";
    }
  }
}

// The old sum_squares used an OpenMP reduction clause, whose combine order depends on the thread
// count: its last bits changed with OMP_NUM_THREADS.
TEST_P(Reduce, SameBitsForOneTwoAndThreeThreads) {
#ifndef _OPENMP
  GTEST_SKIP() << "built without OpenMP";
#else
  const int64_t n = 100000;  // 7 blocks of 2^14
  Tensor xt = dev.upload(randn(size_t(n), 1, 121), {n}), out = dev.alloc({1}, DType::F64);
  const int saved = omp_get_max_threads();
  std::vector<uint64_t> sums, squares;
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    ops().sum(ctx(), xt, out);
    sums.push_back(std::bit_cast<uint64_t>(dev.scalar(out)));
    ops().sum_squares(ctx(), xt, out);
    squares.push_back(std::bit_cast<uint64_t>(dev.scalar(out)));
  }
  omp_set_num_threads(saved);
  EXPECT_EQ(sums[0], sums[1]);
  EXPECT_EQ(sums[0], sums[2]);
  EXPECT_EQ(squares[0], squares[1]);
  EXPECT_EQ(squares[0], squares[2]);
#endif
}

TEST_P(Reduce, InfAndNanPropagate) {
  const int64_t n = 40000;  // 3 blocks
  const float inf = std::numeric_limits<float>::infinity(),
              nan = std::numeric_limits<float>::quiet_NaN();
  Tensor out = dev.alloc({1}, DType::F64);
  auto run = [&](std::vector<float> x, double& s, double& ss) {
    Tensor xt = dev.upload(x, {n});
    ops().sum(ctx(), xt, out);
    s = dev.scalar(out);
    ops().sum_squares(ctx(), xt, out);
    ss = dev.scalar(out);
  };
  std::vector<float> x = to_f32(randn(size_t(n), 1, 131));
  double s, ss;
  x[20000] = inf;
  run(x, s, ss);
  EXPECT_EQ(s, double(inf));
  EXPECT_EQ(ss, double(inf));
  x[39999] = -inf;  // inf - inf in the sum; squares stay inf
  run(x, s, ss);
  EXPECT_TRUE(std::isnan(s));
  EXPECT_EQ(ss, double(inf));
  x[20000] = 1.f;
  x[39999] = 2.f;
  x[5] = nan;
  run(x, s, ss);
  EXPECT_TRUE(std::isnan(s));
  EXPECT_TRUE(std::isnan(ss));
}

// ---------------------------------------------------------------------------------------------
// cast: f32 <-> bf16 / f16.

CS_BACKEND_SUITE(Cast);

// f32 -> dtype -> f32 on device; returns the round trip's values and the half-precision bits.
std::pair<std::vector<float>, std::vector<uint16_t>> round_trip(OnDevice& dev,
                                                                const std::vector<float>& x,
                                                                DType dtype) {
  const int64_t n = int64_t(x.size());
  Tensor xt = dev.upload(x, {n}), ht = dev.alloc({n}, dtype), back = dev.alloc({n});
  dev.ops().cast(dev.ctx(), xt, ht);
  dev.ops().cast(dev.ctx(), ht, back);
  return {dev.download(back), dev.download<uint16_t>(ht)};
}

TEST_P(Cast, RoundTripWithinTheDtypesTolerance) {
  std::vector<double> x;
  for (double s : {1e-3, 1.0, 100.0}) {
    auto part = randn(1000, s, 141);
    x.insert(x.end(), part.begin(), part.end());
  }
  const std::vector<float> xf = to_f32(x);
  EXPECT_TRUE(all_close(round_trip(dev, xf, DType::BF16).first, x, tol::kBF16.atol, tol::kBF16.rtol,
                        "f32 -> bf16 -> f32", tol::kBF16.min_cosine));
  EXPECT_TRUE(all_close(round_trip(dev, xf, DType::F16).first, x, tol::kF16.atol, tol::kF16.rtol,
                        "f32 -> f16 -> f32", tol::kF16.min_cosine));
}

TEST_P(Cast, RepresentableValuesAreExact) {
  const float inf = std::numeric_limits<float>::infinity();
  // bf16: fp32's exponent range, 8 significant bits; 2^-133 is its smallest subnormal.
  const std::vector<float> bf = {0.f,
                                 -0.f,
                                 1.f,
                                 -1.5f,
                                 3.140625f,
                                 std::ldexp(1.f, 100),
                                 -std::ldexp(1.f, -126),
                                 std::ldexp(1.f, -133),
                                 65280.f,
                                 inf,
                                 -inf};
  // f16: 65504 is the largest, 2^-14 the smallest normal, 2^-24 the smallest subnormal.
  const std::vector<float> hf = {0.f,
                                 -0.f,
                                 1.f,
                                 -1.5f,
                                 65504.f,
                                 -65504.f,
                                 std::ldexp(1.f, -14),
                                 std::ldexp(1.f, -24),
                                 3 * std::ldexp(1.f, -24),
                                 0.333251953125f,
                                 inf,
                                 -inf};
  for (auto [dtype, x] : {std::pair{DType::BF16, bf}, std::pair{DType::F16, hf}}) {
    const std::vector<float> back = round_trip(dev, x, dtype).first;
    for (size_t i = 0; i < x.size(); ++i)
      EXPECT_EQ(std::bit_cast<uint32_t>(back[i]), std::bit_cast<uint32_t>(x[i]))
          << dtype_name(dtype) << " " << x[i] << " came back as " << back[i];
  }
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(std::isnan(round_trip(dev, {nan}, DType::BF16).first[0]));
  EXPECT_TRUE(std::isnan(round_trip(dev, {nan}, DType::F16).first[0]));
}

// Halfway cases go to the even neighbour; just above halfway rounds up; fp16 overflows to inf
// from 65520 (halfway to 2^16) up.
TEST_P(Cast, RoundsToNearestEven) {
  const std::vector<float> bf = {1.f + std::ldexp(1.f, -8), 1.f + 3 * std::ldexp(1.f, -8),
                                 -(1.f + std::ldexp(1.f, -8)),
                                 1.f + std::ldexp(1.f, -8) + std::ldexp(1.f, -20)};
  EXPECT_EQ(round_trip(dev, bf, DType::BF16).second,
            (std::vector<uint16_t>{0x3F80, 0x3F82, 0xBF80, 0x3F81}));
  const std::vector<float> hf = {1.f + std::ldexp(1.f, -11),
                                 1.f + 3 * std::ldexp(1.f, -11),
                                 1.f + std::ldexp(1.f, -11) + std::ldexp(1.f, -20),
                                 65519.f,
                                 65520.f,
                                 -1e6f,
                                 std::ldexp(1.f, -25),
                                 3 * std::ldexp(1.f, -25)};
  EXPECT_EQ(
      round_trip(dev, hf, DType::F16).second,
      (std::vector<uint16_t>{0x3C00, 0x3C02, 0x3C01, 0x7BFF, 0x7C00, 0xFC00, 0x0000, 0x0002}));
}

TEST_P(Cast, SameDtypeIsACopy) {
  const std::vector<float> x = to_f32(randn(333, 1, 151));
  Tensor xt = dev.upload(x, {3, 111}), yt = dev.alloc({333});
  ops().cast(ctx(), xt, yt);
  EXPECT_EQ(dev.download(yt), x);
  const std::vector<uint16_t> h = {0x3F80, 0x7FC0, 0x0001, 0xFF80};
  Tensor ht = dev.upload(h, {4}, DType::BF16), h2 = dev.alloc({2, 2}, DType::BF16);
  ops().cast(ctx(), ht, h2);
  EXPECT_EQ(dev.download<uint16_t>(h2), h);
}

TEST_P(Cast, OtherPairsAreAnErrorNamingBothDtypes) {
  Tensor f32 = dev.alloc({4}), i32 = dev.alloc({4}, DType::I32), bf16 = dev.alloc({4}, DType::BF16);
  Tensor f16 = dev.alloc({4}, DType::F16), f64 = dev.alloc({4}, DType::F64);
  EXPECT_TRUE(
      test::throws_error_naming([&] { ops().cast(ctx(), f32, i32); }, {"[cast]", "f32", "i32"}));
  EXPECT_TRUE(
      test::throws_error_naming([&] { ops().cast(ctx(), bf16, f16); }, {"[cast]", "bf16", "f16"}));
  EXPECT_TRUE(
      test::throws_error_naming([&] { ops().cast(ctx(), f64, f32); }, {"[cast]", "f64", "f32"}));
}


}  // namespace
}  // namespace cs
