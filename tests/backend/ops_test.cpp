// Every op on every backend this build has (test_backends(), ggml test-backend-ops style): inputs
// are uploaded into device buffers, the op runs on the backend's context, outputs are downloaded
// and checked, forwards against the float64 scalar reference (tests/ref/ops_ref.h), backwards
// against complex-step derivatives of that reference. Small awkward shapes (odd T, 3 heads, D = 96,
// vocab 37), inputs swept over scales 2^k. Also: reductions (fixed order: the same bits for any
// thread count), casts, the ops' dtype and device checks, and the Backend's memory.
#include <gtest/gtest.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "backend/host_copy.h"
#include "backend/op_check.h"
#include "backend/test_util.h"
#include "closeness.h"
#include "ref/ops_ref.h"
#include "tolerances.h"

namespace cs {
namespace {
using ref::cd;
using test::all_close;
using test::OnDevice;
using test::randn;
using test::to_f32;

::testing::AssertionResult grad_close(const std::vector<float>& got,
                                      const std::vector<double>& want, const std::string& what) {
  return all_close(got, want, tol::kGradAtolScale * std::max(1.0, test::max_abs(want)),
                   tol::kGradRtol, what);
}

// An op test on one backend (the parameter: its --device name).
class OnBackend : public ::testing::TestWithParam<std::string> {
 protected:
  OnDevice dev{GetParam()};
  Ctx& ctx() { return dev.ctx(); }
  const Ops& ops() { return dev.ops(); }
};

// An op test on one backend with inputs at one scale.
class Scaled : public ::testing::TestWithParam<std::tuple<std::string, double>> {
 protected:
  OnDevice dev{std::get<0>(GetParam())};
  double scale() const { return std::get<1>(GetParam()); }
  Ctx& ctx() { return dev.ctx(); }
  const Ops& ops() { return dev.ops(); }
};

#define CS_BACKEND_SUITE(Suite)                                                         \
  class Suite : public OnBackend {};                                                    \
  INSTANTIATE_TEST_SUITE_P(Backends, Suite, ::testing::ValuesIn(test::test_backends()), \
                           test::backend_param_name)

// ---------------------------------------------------------------------------------------------
// Maths

CS_BACKEND_SUITE(Matmul);

TEST_P(Matmul, AllTransposesMatchDoubleLoops) {
  const int64_t m = 5, n = 7, k = 3;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      auto a = randn(size_t(m * k), 1, 1), b = randn(size_t(k * n), 1, 2),
           c0 = randn(size_t(m * n), 1, 3);
      Tensor at = dev.upload(a, ta ? Shape{k, m} : Shape{m, k}),
             bt = dev.upload(b, tb ? Shape{n, k} : Shape{k, n});
      Tensor ct = dev.upload(c0, {m, n});
      ops().matmul(ctx(), at, ta, bt, tb, ct, 0.5f, 2.0f);
      std::vector<double> want(size_t(m * n));
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          double acc = 0;
          for (int64_t p = 0; p < k; ++p)
            acc += a[size_t(ta ? p * m + i : i * k + p)] * b[size_t(tb ? j * k + p : p * n + j)];
          want[size_t(i * n + j)] = 0.5 * acc + 2.0 * c0[size_t(i * n + j)];
        }
      EXPECT_TRUE(all_close(dev.download(ct), want, tol::kF32Atol, tol::kF32Rtol, "matmul"));
    }
}

// Large enough to run OpenBLAS's blocked kernels (not the small-matrix path).
TEST_P(Matmul, LargeGemmMatchesDoubleLoops) {
  const int64_t m = 131, n = 257, k = 199;
  auto a = randn(size_t(m * k), 1, 5), b = randn(size_t(n * k), 1, 6);
  Tensor at = dev.upload(a, {m, k}), bt = dev.upload(b, {n, k}), ct = dev.alloc({m, n});
  ops().matmul(ctx(), at, false, bt, true, ct, 1.f, 0.f);
  std::vector<double> want(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (int64_t p = 0; p < k; ++p) acc += a[size_t(i * k + p)] * b[size_t(j * k + p)];
      want[size_t(i * n + j)] = acc;
    }
  EXPECT_TRUE(all_close(dev.download(ct), want, 1e-5, 1e-5, "sgemm 131x257x199"));
}

std::string self_exe() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, size_t(n)) : std::string();
}

// The machines set OPENBLAS_CORETYPE=Haswell for old OpenBLAS builds; make bench unsets it. The
// GEMM must be right both ways: rerun the GEMM tests in a child with each setting.
TEST_P(Matmul, RightWithAndWithoutOpenblasCoretype) {
  if (GetParam() != "cpu") GTEST_SKIP() << "OpenBLAS is the cpu backend's";
  if (std::getenv("CS_GEMM_CHILD")) GTEST_SKIP() << "child run";
  for (const char* env :
       {"OPENBLAS_CORETYPE=Haswell", "-u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE"}) {
    const std::string cmd = std::string("env ") + env + " CS_GEMM_CHILD=1 " + self_exe() +
                            " --gtest_filter='*/Matmul.*' > /dev/null 2>&1";
    EXPECT_EQ(0, std::system(cmd.c_str())) << cmd;
  }
}

TEST_P(Scaled, RmsNormForwardBackward) {
  const int64_t n = 5, d = 96;
  const double eps = 1e-6;
  auto x = randn(size_t(n * d), scale(), 11), w = randn(size_t(d), 1, 12),
       dy = randn(size_t(n * d), 1, 13);
  for (auto& v : w) v += 1.0;
  Tensor xt = dev.upload(x, {n, d}), wt = dev.upload(w, {d}), yt = dev.alloc({n, d}),
         rt = dev.alloc({n});
  ops().rmsnorm_forward(ctx(), xt, wt, float(eps), yt, rt);
  EXPECT_TRUE(all_close(dev.download(yt), ref::rmsnorm(x, w, eps, n, d), tol::kF32Atol,
                        tol::kF32Rtol, "rmsnorm y"));
  Tensor dyt = dev.upload(dy, {n, d}),
         dxt = dev.upload(std::vector<float>(size_t(n * d), 0.5f), {n, d});
  Tensor dwt = dev.upload(std::vector<float>(size_t(d), 0.25f), {d});
  ops().rmsnorm_backward(ctx(), xt, wt, rt, dyt, dxt, dwt, /*accumulate_dx=*/true);
  std::vector<cd> wc(w.begin(), w.end()), xc(x.begin(), x.end());
  auto gx = ref::vjp_complex_step(
      [&](const std::vector<cd>& v) { return ref::rmsnorm(v, wc, eps, n, d); }, x, dy);
  auto gw = ref::vjp_complex_step(
      [&](const std::vector<cd>& v) { return ref::rmsnorm(xc, v, eps, n, d); }, w, dy);
  for (auto& g : gx) g += 0.5;   // accumulate_dx adds to what was there
  for (auto& g : gw) g += 0.25;  // parameter gradients accumulate
  EXPECT_TRUE(grad_close(dev.download(dxt), gx, "rmsnorm dx"));
  EXPECT_TRUE(grad_close(dev.download(dwt), gw, "rmsnorm dw"));
}

TEST_P(Scaled, RopeForwardBackward) {
  const int64_t b = 2, h = 3, t = 17, hd = 8;
  for (int64_t pos0 : {0, 5}) {
    auto x = randn(size_t(b * h * t * hd), scale(), 21), dy = randn(x.size(), 1, 22);
    Tensor xt = dev.upload(x, {b, h, t, hd}), dyt = dev.upload(dy, {b, h, t, hd});
    ops().rope_apply(ctx(), xt, 10000.f, pos0, false);
    EXPECT_TRUE(all_close(dev.download(xt), ref::rope(x, b * h, t, hd, 10000.0, pos0),
                          tol::kF32Atol, tol::kF32Rtol, "rope"));
    ops().rope_apply(ctx(), dyt, 10000.f, pos0, true);
    auto g = ref::vjp_complex_step(
        [&](const std::vector<cd>& v) { return ref::rope(v, b * h, t, hd, 10000.0, pos0); }, x, dy);
    EXPECT_TRUE(grad_close(dev.download(dyt), g, "rope dx"));
  }
}

TEST_P(Scaled, SwigluForwardBackward) {
  const int64_t n = 7, f = 13;
  auto gu = randn(size_t(n * 2 * f), scale(), 31), dy = randn(size_t(n * f), 1, 32);
  Tensor gut = dev.upload(gu, {n, 2 * f}), yt = dev.alloc({n, f}), dyt = dev.upload(dy, {n, f});
  Tensor dgt = dev.alloc({n, 2 * f});
  ops().swiglu_forward(ctx(), gut, yt);
  EXPECT_TRUE(
      all_close(dev.download(yt), ref::swiglu(gu, n, f), tol::kF32Atol, tol::kF32Rtol, "swiglu"));
  ops().swiglu_backward(ctx(), gut, dyt, dgt);
  auto g =
      ref::vjp_complex_step([&](const std::vector<cd>& v) { return ref::swiglu(v, n, f); }, gu, dy);
  EXPECT_TRUE(grad_close(dev.download(dgt), g, "swiglu dgu"));
}

TEST_P(Scaled, CrossEntropyForwardBackward) {
  const int64_t n = 6, v = 37;
  auto z = randn(size_t(n * v), scale(), 41);
  std::vector<int32_t> tgt = {3, 0, 36, -1, 17, 5};
  Tensor zt = dev.upload(z, {n, v}), tt = dev.upload(tgt, {n}), lt = dev.alloc({n}),
         st = dev.alloc({n});
  ops().cross_entropy_forward(ctx(), zt, tt, lt, st);
  const std::vector<float> loss = dev.download(lt);
  EXPECT_TRUE(
      all_close(loss, ref::cross_entropy(z, tgt, v), tol::kF32Atol, tol::kF32Rtol, "ce loss"));
  EXPECT_EQ(loss[3], 0.f);
  Tensor dzt = dev.alloc({n, v});
  ops().cross_entropy_backward(ctx(), zt, st, tt, 0.2f, dzt);
  std::vector<double> dl(size_t(n), 0.2);
  auto g = ref::vjp_complex_step(
      [&](const std::vector<cd>& x) { return ref::cross_entropy(x, tgt, v); }, z, dl);
  EXPECT_TRUE(grad_close(dev.download(dzt), g, "ce dlogits"));
}

INSTANTIATE_TEST_SUITE_P(Scales, Scaled,
                         ::testing::Combine(::testing::ValuesIn(test::test_backends()),
                                            ::testing::Values(0.25, 1.0, 8.0)),
                         test::backend_scale_param_name);

CS_BACKEND_SUITE(Embedding);

TEST_P(Embedding, LookupAndScatterAdd) {
  const int64_t v = 11, d = 5;
  auto w = to_f32(randn(size_t(v * d), 1, 51));
  std::vector<int32_t> ids = {3, 0, 3, 10, 3};
  Tensor it = dev.upload(ids, {5}), wt = dev.upload(w, {v, d}), ot = dev.alloc({5, d});
  Tensor dwt = dev.upload(std::vector<float>(size_t(v * d), 1.f), {v, d});
  ops().embedding_forward(ctx(), it, wt, ot);
  const std::vector<float> out = dev.download(ot);
  for (size_t i = 0; i < ids.size(); ++i)
    for (int64_t j = 0; j < d; ++j) EXPECT_EQ(out[i * d + j], w[ids[i] * d + j]);
  ops().embedding_backward(ctx(), it, ot, dwt);
  const std::vector<float> dw = dev.download(dwt);
  for (int64_t j = 0; j < d; ++j) {
    EXPECT_FLOAT_EQ(dw[3 * d + j], 1.f + 3 * w[3 * d + j]);
    EXPECT_FLOAT_EQ(dw[1 * d + j], 1.f);
  }
}

CS_BACKEND_SUITE(Heads);

TEST_P(Heads, SplitThenMergeIsIdentity) {
  const int64_t b = 2, t = 5, h = 3, hd = 4, c = 3 * h * hd;
  auto x = to_f32(randn(size_t(b * t * c), 1, 61));
  Tensor xt = dev.upload(x, {b, t, c}), qt = dev.alloc({b, h, t, hd}), bt = dev.alloc({b, t, c});
  for (int part = 0; part < 3; ++part) {
    ops().split_heads(ctx(), xt, part * h * hd, qt);
    const std::vector<float> q = dev.download(qt);
    EXPECT_EQ(q[((1 * h + 2) * t + 3) * hd + 1], x[(1 * t + 3) * c + part * h * hd + 2 * hd + 1]);
    ops().merge_heads(ctx(), qt, bt, part * h * hd);
  }
  EXPECT_EQ(dev.download(bt), x);
}

TEST(Alibi, BaichuanSlopesIncludingFortyHeads) {
  std::vector<float> s8(8), s40(40);
  alibi_slopes(8, s8.data());
  for (int i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(s8[i], std::pow(2.0f, -float(i + 1)));
  alibi_slopes(40, s40.data());
  // 32 slopes 2^(-8(i+1)/32), then 8 of the 64-head sequence 2^(-8(j+1)/64) at j = 0, 2, 4, ...
  for (int i = 0; i < 32; ++i) EXPECT_NEAR(s40[i], std::pow(2.0, -0.25 * (i + 1)), 1e-7);
  for (int j = 0; j < 8; ++j) EXPECT_NEAR(s40[32 + j], std::pow(2.0, -0.125 * (2 * j + 1)), 1e-7);
  EXPECT_NEAR(s40[0], 0.8408964, 1e-7);
}

CS_BACKEND_SUITE(Elementwise);

TEST_P(Elementwise, AddInplaceThenScale) {
  const int64_t n = 1000;
  auto x = randn(size_t(n), 1, 65), y = randn(size_t(n), 2, 66);
  Tensor xt = dev.upload(x, {n}), yt = dev.upload(y, {10, n / 10});  // same numel, other shape
  ops().add_inplace(ctx(), yt, xt);
  std::vector<double> want(static_cast<size_t>(n));
  for (size_t i = 0; i < want.size(); ++i) want[i] = y[i] + x[i];
  EXPECT_TRUE(all_close(dev.download(yt), want, tol::kF32Atol, tol::kF32Rtol, "add_inplace"));
  ops().scale(ctx(), yt, -0.75f);
  for (auto& w : want) w *= -0.75;
  EXPECT_TRUE(all_close(dev.download(yt), want, tol::kF32Atol, tol::kF32Rtol, "scale"));
}

// Rows [r0, r1) of every head of x (BH, T, Hd), as (BH, r1 - r0, Hd).
template <typename T>
std::vector<T> rows(const std::vector<T>& x, int64_t bh, int64_t t_len, int64_t hd, int64_t r0,
                    int64_t r1) {
  std::vector<T> out;
  for (int64_t i = 0; i < bh; ++i)
    out.insert(out.end(), x.begin() + (i * t_len + r0) * hd, x.begin() + (i * t_len + r1) * hd);
  return out;
}

CS_BACKEND_SUITE(KvCache);

// The cache filled in two appends, then the last Tq positions decoded against it: the same rows
// as full causal attention over all T positions (the float64 reference), with ALiBi.
TEST_P(KvCache, AppendThenDecodeMatchesReference) {
  const int64_t b = 2, h = 3, t = 11, hd = 8, cap = 16, tq = 4, split = 6;
  const size_t n = size_t(b * h * t * hd);
  auto q = randn(n, 1, 91), k = randn(n, 1, 92), v = randn(n, 1, 93);
  std::vector<float> sl(static_cast<size_t>(h));
  alibi_slopes(h, sl.data());
  const std::vector<double> want =
      rows(ref::attention(q, k, v, {sl.begin(), sl.end()}, b, h, t, hd), b * h, t, hd, t - tq, t);
  Tensor kc = dev.alloc({b, h, cap, hd}), vc = dev.alloc({b, h, cap, hd});
  const std::pair<int64_t, int64_t> chunks[] = {{0, split}, {split, t}};
  for (auto [r0, r1] : chunks) {
    ops().kv_append(ctx(), dev.upload(rows(k, b * h, t, hd, r0, r1), {b, h, r1 - r0, hd}), kc, r0);
    ops().kv_append(ctx(), dev.upload(rows(v, b * h, t, hd, r0, r1), {b, h, r1 - r0, hd}), vc, r0);
  }
  const std::vector<float> kcache = dev.download(kc);
  EXPECT_EQ(rows(kcache, b * h, cap, hd, 0, t), to_f32(k));
  EXPECT_EQ(rows(kcache, b * h, cap, hd, t, cap),
            std::vector<float>(size_t(b * h * (cap - t) * hd), 0.f));
  Tensor qt = dev.upload(rows(q, b * h, t, hd, t - tq, t), {b, h, tq, hd}),
         ot = dev.alloc({b, h, tq, hd});
  ops().attention_decode(ctx(), qt, kc, vc, t, dev.upload(sl, {h}), ot);
  EXPECT_TRUE(all_close(dev.download(ot), want, tol::kF32Atol, tol::kF32Rtol, "decode o"));
}

CS_BACKEND_SUITE(AdamwUpdate);

TEST_P(AdamwUpdate, OneStepMatchesDoubleFormula) {
  const int64_t n = 517, step = 3;
  const double lr = 1e-2, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
  auto p = randn(size_t(n), 1, 101), g = randn(size_t(n), 1, 102), m = randn(size_t(n), 0.1, 103);
  auto v = randn(size_t(n), 0.1, 104);
  for (auto& x : v) x = double(float(x * x));
  Tensor pt = dev.upload(p, {n}), gt = dev.upload(g, {n}), mt = dev.upload(m, {n}),
         vt = dev.upload(v, {n});
  ops().adamw_update(ctx(), pt, gt, mt, vt, lr, b1, b2, eps, wd, step);
  ref::adamw(p, g, m, v, lr, b1, b2, eps, wd, step);
  EXPECT_TRUE(all_close(dev.download(pt), p, tol::kF32Atol, tol::kF32Rtol, "adamw p"));
  EXPECT_TRUE(all_close(dev.download(mt), m, tol::kF32Atol, tol::kF32Rtol, "adamw m"));
  EXPECT_TRUE(all_close(dev.download(vt), v, tol::kF32Atol, tol::kF32Rtol, "adamw v"));
}

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

// ---------------------------------------------------------------------------------------------
// Argument checks: every op rejects a tensor of the wrong dtype or on another device with a
// cs::Error naming the op and the argument, before it touches memory.

CS_BACKEND_SUITE(ArgChecks);

TEST_P(ArgChecks, MatmulRejectsABf16Operand) {
  Tensor a = dev.alloc({2, 4}), b = dev.alloc({4, 4}), c = dev.alloc({2, 4});
  Tensor a16 = dev.alloc({2, 4}, DType::BF16), b16 = dev.alloc({4, 4}, DType::BF16);
  EXPECT_TRUE(test::throws_error_naming([&] { ops().matmul(ctx(), a16, false, b, false, c, 1, 0); },
                                        {"[matmul]", " a:", "bf16"}));
  EXPECT_TRUE(test::throws_error_naming([&] { ops().matmul(ctx(), a, false, b16, false, c, 1, 0); },
                                        {"[matmul]", " b:", "bf16"}));
}

TEST_P(ArgChecks, EmbeddingRejectsF32Tokens) {
  Tensor tok = dev.alloc({2}), w = dev.alloc({5, 4}), out = dev.alloc({2, 4});
  EXPECT_TRUE(test::throws_error_naming([&] { ops().embedding_forward(ctx(), tok, w, out); },
                                        {"[embedding_forward]", " tokens:", "i32", "f32"}));
  EXPECT_TRUE(test::throws_error_naming([&] { ops().embedding_backward(ctx(), tok, out, w); },
                                        {"[embedding_backward]", " tokens:", "i32", "f32"}));
}

// Every tensor argument of every op, made wrong in dtype and then in device, one at a time.
TEST_P(ArgChecks, EveryOpChecksEveryArgumentsDtypeAndDevice) {
  const Device other = dev.backend().device() == Device::CPU ? Device::CUDA : Device::CPU;
  const int64_t n = 2, d = 4, v = 5, b = 1, h = 2, t = 3, hd = 4;
  const Shape heads{b, h, t, hd};
  Tensor x = dev.alloc({n, d}), y = dev.alloc({n, d}), w = dev.alloc({d}), r = dev.alloc({n});
  Tensor sq = dev.alloc({d, d}), emb = dev.alloc({v, d});
  Tensor tok = dev.upload(std::vector<int32_t>{1, 3}, {n});
  Tensor q = dev.alloc(heads), k = dev.alloc(heads), vv = dev.alloc(heads), o = dev.alloc(heads);
  Tensor lse = dev.alloc({b, h, t}), sl = dev.upload(std::vector<float>{0.5f, 0.25f}, {h});
  Tensor dq = dev.alloc(heads), dk = dev.alloc(heads), dv = dev.alloc(heads);
  Tensor tok3 = dev.alloc({b, t, 2 * h * hd}), kc = dev.alloc({b, h, 5, hd});
  Tensor vc = dev.alloc({b, h, 5, hd}), gu = dev.alloc({n, 2 * d}), z = dev.alloc({n, v});
  Tensor tgt = dev.upload(std::vector<int32_t>{1, -1}, {n}), s64 = dev.alloc({1}, DType::F64);
  Tensor half = dev.alloc({n, d}, DType::BF16);
  using Args = std::vector<Tensor>;
  struct Row {
    const char* op;
    std::vector<const char*> names;  // the op's tensor arguments, in order
    Args args;                       // valid values of them
    std::function<void(const Args&)> call;
  };
  Ctx& c = ctx();
  const Ops& ops = this->ops();
  const std::vector<Row> table = {
      {"matmul",
       {"a", "b", "out"},
       {x, sq, y},
       [&](const Args& a) { ops.matmul(c, a[0], false, a[1], false, a[2], 1, 0); }},
      {"embedding_forward",
       {"tokens", "weight", "out"},
       {tok, emb, x},
       [&](const Args& a) { ops.embedding_forward(c, a[0], a[1], a[2]); }},
      {"embedding_backward",
       {"tokens", "dout", "dweight"},
       {tok, x, emb},
       [&](const Args& a) { ops.embedding_backward(c, a[0], a[1], a[2]); }},
      {"rmsnorm_forward",
       {"x", "w", "y", "rstd"},
       {x, w, y, r},
       [&](const Args& a) { ops.rmsnorm_forward(c, a[0], a[1], 1e-6f, a[2], a[3]); }},
      {"rmsnorm_backward",
       {"x", "w", "rstd", "dy", "dx", "dw"},
       {x, w, r, y, x, w},
       [&](const Args& a) { ops.rmsnorm_backward(c, a[0], a[1], a[2], a[3], a[4], a[5], false); }},
      {"rope_apply", {"x"}, {q}, [&](const Args& a) { ops.rope_apply(c, a[0], 1e4f, 0, false); }},
      {"split_heads",
       {"x", "out"},
       {tok3, q},
       [&](const Args& a) { ops.split_heads(c, a[0], 0, a[1]); }},
      {"merge_heads",
       {"in", "x"},
       {q, tok3},
       [&](const Args& a) { ops.merge_heads(c, a[0], a[1], 0); }},
      {"attention_forward",
       {"q", "k", "v", "slopes", "o", "lse"},
       {q, k, vv, sl, o, lse},
       [&](const Args& a) { ops.attention_forward(c, a[0], a[1], a[2], a[3], a[4], a[5]); }},
      {"attention_backward",
       {"q", "k", "v", "slopes", "o", "lse", "dout", "dq", "dk", "dv"},
       {q, k, vv, sl, o, lse, o, dq, dk, dv},
       [&](const Args& a) {
         ops.attention_backward(c, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9]);
       }},
      {"attention_decode",
       {"q", "k_cache", "v_cache", "slopes", "o"},
       {q, kc, vc, sl, o},
       [&](const Args& a) { ops.attention_decode(c, a[0], a[1], a[2], t, a[3], a[4]); }},
      {"kv_append",
       {"x", "cache"},
       {q, kc},
       [&](const Args& a) { ops.kv_append(c, a[0], a[1], 0); }},
      {"swiglu_forward",
       {"gu", "out"},
       {gu, x},
       [&](const Args& a) { ops.swiglu_forward(c, a[0], a[1]); }},
      {"swiglu_backward",
       {"gu", "dout", "dgu"},
       {gu, x, gu},
       [&](const Args& a) { ops.swiglu_backward(c, a[0], a[1], a[2]); }},
      {"cross_entropy_forward",
       {"logits", "targets", "losses", "lse"},
       {z, tgt, r, r},
       [&](const Args& a) { ops.cross_entropy_forward(c, a[0], a[1], a[2], a[3]); }},
      {"cross_entropy_backward",
       {"logits", "lse", "targets", "dlogits"},
       {z, r, tgt, z},
       [&](const Args& a) { ops.cross_entropy_backward(c, a[0], a[1], a[2], 1.f, a[3]); }},
      {"add_inplace", {"y", "x"}, {y, x}, [&](const Args& a) { ops.add_inplace(c, a[0], a[1]); }},
      {"scale", {"x"}, {x}, [&](const Args& a) { ops.scale(c, a[0], 2.f); }},
      {"cast", {"x", "y"}, {x, half}, [&](const Args& a) { ops.cast(c, a[0], a[1]); }},
      {"sum", {"x", "out"}, {x, s64}, [&](const Args& a) { ops.sum(c, a[0], a[1]); }},
      {"sum_squares",
       {"x", "out"},
       {x, s64},
       [&](const Args& a) { ops.sum_squares(c, a[0], a[1]); }},
      {"adamw_update",
       {"p", "g", "m", "v"},
       {x, x, y, y},
       [&](const Args& a) {
         ops.adamw_update(c, a[0], a[1], a[2], a[3], 1e-3, 0.9, 0.95, 1e-8, 0.1, 1);
       }},
  };
  for (const Row& row : table) {
    ASSERT_EQ(row.names.size(), row.args.size()) << row.op;
    const std::string op = std::string("[") + row.op + "]";
    for (size_t i = 0; i < row.args.size(); ++i) {
      SCOPED_TRACE(op + " " + row.names[i]);
      const std::string arg = std::string(" ") + row.names[i] + ":";
      Args bad = row.args;
      // The wrong dtype: bf16 for f32, f32 for i32 ids and for the F64 output. cast takes any
      // float dtype; its pairs are tested in Cast.
      if (std::string(row.op) != "cast") {
        bad[i].dtype = row.args[i].dtype == DType::F32 ? DType::BF16 : DType::F32;
        EXPECT_TRUE(test::throws_error_naming([&] { row.call(bad); }, {op, arg}));
      }
      bad[i] = row.args[i];
      bad[i].device = other;
      EXPECT_TRUE(test::throws_error_naming([&] { row.call(bad); }, {op, arg, device_name(other)}));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The Backend's memory: allocate, upload / download, copy, zero; make_backend.

CS_BACKEND_SUITE(BackendMemory);

TEST_P(BackendMemory, NamesItsDeviceAndOps) {
  Backend& be = dev.backend();
  EXPECT_EQ(std::string(be.name()), GetParam());
  EXPECT_EQ(std::string(device_name(be.device())), GetParam());
  EXPECT_EQ(&ctx().backend, &be);
  EXPECT_EQ(&ctx().ops, &be.ops());
  EXPECT_EQ(dev.alloc({3}).device, be.device());
}

TEST_P(BackendMemory, AllocateIsZeroFilledAndAligned) {
  Backend& be = dev.backend();
  for (size_t bytes : {size_t(1), size_t(1000), size_t(1) << 20}) {
    // Dirty a block, free it, allocate the same size again (likely the same memory): zeros.
    void* p = be.allocate(bytes);
    const Tensor t(p, {int64_t(bytes)}, DType::U8, be.device());
    be.upload(ctx(), std::vector<uint8_t>(bytes, 0xAB).data(), t);
    be.deallocate(p);
    void* p2 = be.allocate(bytes);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p2) % 64, 0u) << bytes;
    EXPECT_EQ(dev.download<uint8_t>(Tensor(p2, {int64_t(bytes)}, DType::U8, be.device())),
              std::vector<uint8_t>(bytes, 0))
        << bytes;
    be.deallocate(p2);
  }
}

TEST_P(BackendMemory, UploadDownloadRoundTrip) {
  const std::vector<float> f = to_f32(randn(1001, 1, 161));
  EXPECT_EQ(dev.download(dev.upload(f, {7, 143})), f);
  const std::vector<int32_t> i = {-1, 0, 7, 1 << 30};
  EXPECT_EQ(dev.download<int32_t>(dev.upload(i, {4})), i);
  const std::vector<double> d = {1e300, -0.0, 3.25};
  EXPECT_EQ(dev.download<double>(dev.upload(d, {3}, DType::F64)), d);
  const std::vector<uint16_t> h = {0x3F80, 0xFFFF, 0};
  EXPECT_EQ(dev.download<uint16_t>(dev.upload(h, {3}, DType::BF16)), h);
  // Into rows [1, 3) of a (4, 3) tensor: the other rows stay as they were.
  Tensor big = dev.upload(std::vector<float>(12, 9.f), {4, 3});
  dev.backend().upload(ctx(), std::vector<float>(6, -1.f).data(), big.slice_rows(1, 3));
  EXPECT_EQ(dev.download(big), (std::vector<float>{9, 9, 9, -1, -1, -1, -1, -1, -1, 9, 9, 9}));
  EXPECT_EQ(dev.download(big.slice_rows(3, 4)), (std::vector<float>{9, 9, 9}));
}

TEST_P(BackendMemory, CopyBetweenTensors) {
  const std::vector<float> f = to_f32(randn(300, 1, 171));
  Tensor src = dev.upload(f, {300}), dst = dev.alloc({3, 100});
  dev.backend().copy(ctx(), src, dst);
  EXPECT_EQ(dev.download(dst), f);
  dev.backend().copy(ctx(), src, src);  // src == dst is allowed
  EXPECT_EQ(dev.download(src), f);
  // A raw copy between dtypes of the same width keeps the bits.
  Tensor bits = dev.alloc({300}, DType::I32);
  dev.backend().copy(ctx(), src, bits);
  std::vector<int32_t> want(f.size());
  std::memcpy(want.data(), f.data(), f.size() * sizeof(float));
  EXPECT_EQ(dev.download<int32_t>(bits), want);
  // Into a view: rows [2, 4) of a (5, 2) tensor.
  Tensor rows = dev.upload(std::vector<float>(10, 0.5f), {5, 2});
  dev.backend().copy(ctx(), dev.upload(std::vector<float>{1, 2, 3, 4}, {2, 2}),
                     rows.slice_rows(2, 4));
  EXPECT_EQ(dev.download(rows),
            (std::vector<float>{0.5f, 0.5f, 0.5f, 0.5f, 1, 2, 3, 4, 0.5f, 0.5f}));
}

TEST_P(BackendMemory, ZeroClearsExactlyItsView) {
  Tensor t = dev.upload(std::vector<float>(12, 3.f), {4, 3});
  dev.backend().zero(ctx(), t.slice_rows(1, 3));
  EXPECT_EQ(dev.download(t), (std::vector<float>{3, 3, 3, 0, 0, 0, 0, 0, 0, 3, 3, 3}));
  dev.backend().zero(ctx(), t);
  EXPECT_EQ(dev.download(t), std::vector<float>(12, 0.f));
  dev.backend().zero(ctx(), dev.alloc({0}));  // empty: nothing to do
  dev.backend().synchronize(ctx());
}

TEST_P(BackendMemory, HostCopyReadsAndWrites) {
  const std::vector<float> f = {1, 2, 3, 4, 5, 6};
  Tensor t = dev.upload(f, {2, 3});
  {
    HostCopy r(ctx(), t, HostCopy::kRead);
    EXPECT_EQ(std::vector<float>(static_cast<float*>(r.data()), static_cast<float*>(r.data()) + 6),
              f);
    EXPECT_EQ(r.host_tensor().device, Device::CPU);
    EXPECT_EQ(r.host_tensor().shape, t.shape);
  }
  {
    HostCopy w(ctx(), t, HostCopy::kWrite);
    for (int i = 0; i < 6; ++i) static_cast<float*>(w.data())[i] = float(-i);
    w.flush();
  }
  EXPECT_EQ(read_f32(ctx(), t), (std::vector<float>{0, -1, -2, -3, -4, -5}));
}

#ifndef CS_WITH_CUDA
TEST(MakeBackend, CudaInABuildWithoutItIsAUsageErrorNamingTheFlag) {
  try {
    make_backend("cuda");
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("--device"), std::string::npos) << e.what();
    EXPECT_EQ(e.exit_code(), 2);
  }
}
#endif

TEST(MakeBackend, UnknownNameIsAUsageErrorNamingTheFlag) {
  try {
    make_backend("tpu");
    FAIL() << "no error";
  } catch (const UsageError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("--device"), std::string::npos) << msg;
    EXPECT_NE(msg.find("tpu"), std::string::npos) << msg;
    EXPECT_EQ(e.exit_code(), 2);
  }
}

TEST(MakeBackend, CpuIsAlwaysThere) {
  auto be = make_backend("cpu");
  EXPECT_STREQ(be->name(), "cpu");
  EXPECT_STREQ(cpu_backend().name(), "cpu");
  EXPECT_EQ(&cpu_backend().ops(), &cpu_ops());
}

}  // namespace
}  // namespace cs
