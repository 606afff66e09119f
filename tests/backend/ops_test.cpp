// Every CPU op: forward against the float64 scalar reference (tests/ref/ops_ref.h), backward against
// complex-step derivatives of that reference. Small awkward shapes (odd T, 3 heads, D = 96,
// vocab 37), inputs swept over scales 2^k.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "backend/cpu/ops.h"
#include "backend/test_util.h"
#include "closeness.h"
#include "ref/ops_ref.h"
#include "tolerances.h"

namespace cs {
namespace {
using test::all_close;
using test::randn;
using test::to_f32;
using ref::cd;

const Ops& ops = cpu_ops();

::testing::AssertionResult grad_close(const std::vector<float>& got, const std::vector<double>& want,
                                      const std::string& what) {
  return all_close(got, want, tol::kGradAtolScale * std::max(1.0, test::max_abs(want)),
                   tol::kGradRtol, what);
}

TEST(Matmul, AllTransposesMatchDoubleLoops) {
  const int64_t m = 5, n = 7, k = 3;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      auto a = randn(size_t(m * k), 1, 1), b = randn(size_t(k * n), 1, 2), c0 = randn(size_t(m * n), 1, 3);
      auto af = to_f32(a), bf = to_f32(b), cf = to_f32(c0);
      Tensor at(af.data(), ta ? Shape{k, m} : Shape{m, k}), bt(bf.data(), tb ? Shape{n, k} : Shape{k, n});
      Tensor ct(cf.data(), {m, n});
      ops.matmul(at, ta, bt, tb, ct, 0.5f, 2.0f);
      std::vector<double> want(size_t(m * n));
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          double acc = 0;
          for (int64_t p = 0; p < k; ++p)
            acc += a[size_t(ta ? p * m + i : i * k + p)] * b[size_t(tb ? j * k + p : p * n + j)];
          want[size_t(i * n + j)] = 0.5 * acc + 2.0 * c0[size_t(i * n + j)];
        }
      EXPECT_TRUE(all_close(cf, want, tol::kF32Atol, tol::kF32Rtol, "matmul"));
    }
}

class Scaled : public ::testing::TestWithParam<double> {};

TEST_P(Scaled, RmsNormForwardBackward) {
  const int64_t n = 5, d = 96;
  const double eps = 1e-6;
  auto x = randn(size_t(n * d), GetParam(), 11), w = randn(size_t(d), 1, 12), dy = randn(size_t(n * d), 1, 13);
  for (auto& v : w) v += 1.0;
  auto xf = to_f32(x), wf = to_f32(w), dyf = to_f32(dy);
  std::vector<float> y(size_t(n * d)), rstd(static_cast<size_t>(n)), dx(size_t(n * d), 0.5f), dw(size_t(d), 0.25f);
  Tensor xt(xf.data(), {n, d}), wt(wf.data(), {d}), yt(y.data(), {n, d}), rt(rstd.data(), {n});
  ops.rmsnorm_forward(xt, wt, float(eps), yt, rt);
  EXPECT_TRUE(all_close(y, ref::rmsnorm(x, w, eps, n, d), tol::kF32Atol, tol::kF32Rtol, "rmsnorm y"));
  Tensor dyt(dyf.data(), {n, d}), dxt(dx.data(), {n, d}), dwt(dw.data(), {d});
  ops.rmsnorm_backward(xt, wt, rt, dyt, dxt, dwt, /*accumulate_dx=*/true);
  std::vector<cd> wc(w.begin(), w.end()), xc(x.begin(), x.end());
  auto gx = ref::vjp_complex_step([&](const std::vector<cd>& v) { return ref::rmsnorm(v, wc, eps, n, d); }, x, dy);
  auto gw = ref::vjp_complex_step([&](const std::vector<cd>& v) { return ref::rmsnorm(xc, v, eps, n, d); }, w, dy);
  for (auto& g : gx) g += 0.5;   // accumulate_dx adds to what was there
  for (auto& g : gw) g += 0.25;  // parameter gradients accumulate
  EXPECT_TRUE(grad_close(dx, gx, "rmsnorm dx"));
  EXPECT_TRUE(grad_close(dw, gw, "rmsnorm dw"));
}

TEST_P(Scaled, RopeForwardBackward) {
  const int64_t b = 2, h = 3, t = 17, hd = 8;
  for (int64_t pos0 : {0, 5}) {
    auto x = randn(size_t(b * h * t * hd), GetParam(), 21), dy = randn(x.size(), 1, 22);
    auto xf = to_f32(x), dyf = to_f32(dy);
    Tensor xt(xf.data(), {b, h, t, hd}), dyt(dyf.data(), {b, h, t, hd});
    ops.rope_apply(xt, 10000.f, pos0, false);
    EXPECT_TRUE(all_close(xf, ref::rope(x, b * h, t, hd, 10000.0, pos0), tol::kF32Atol, tol::kF32Rtol, "rope"));
    ops.rope_apply(dyt, 10000.f, pos0, true);
    auto g = ref::vjp_complex_step([&](const std::vector<cd>& v) { return ref::rope(v, b * h, t, hd, 10000.0, pos0); }, x, dy);
    EXPECT_TRUE(grad_close(dyf, g, "rope dx"));
  }
}

TEST_P(Scaled, SwigluForwardBackward) {
  const int64_t n = 7, f = 13;
  auto gu = randn(size_t(n * 2 * f), GetParam(), 31), dy = randn(size_t(n * f), 1, 32);
  auto guf = to_f32(gu), dyf = to_f32(dy);
  std::vector<float> y(size_t(n * f)), dgu(gu.size());
  Tensor gut(guf.data(), {n, 2 * f}), yt(y.data(), {n, f}), dyt(dyf.data(), {n, f}), dgt(dgu.data(), {n, 2 * f});
  ops.swiglu_forward(gut, yt);
  EXPECT_TRUE(all_close(y, ref::swiglu(gu, n, f), tol::kF32Atol, tol::kF32Rtol, "swiglu"));
  ops.swiglu_backward(gut, dyt, dgt);
  auto g = ref::vjp_complex_step([&](const std::vector<cd>& v) { return ref::swiglu(v, n, f); }, gu, dy);
  EXPECT_TRUE(grad_close(dgu, g, "swiglu dgu"));
}

TEST_P(Scaled, CrossEntropyForwardBackward) {
  const int64_t n = 6, v = 37;
  auto z = randn(size_t(n * v), GetParam(), 41);
  std::vector<int32_t> tgt = {3, 0, 36, -1, 17, 5};
  auto zf = to_f32(z);
  std::vector<float> loss(static_cast<size_t>(n)), lse(static_cast<size_t>(n)), dz(z.size());
  Tensor zt(zf.data(), {n, v}), tt(tgt.data(), {n}, DType::I32), lt(loss.data(), {n}), st(lse.data(), {n});
  ops.cross_entropy_forward(zt, tt, lt, st);
  EXPECT_TRUE(all_close(loss, ref::cross_entropy(z, tgt, v), tol::kF32Atol, tol::kF32Rtol, "ce loss"));
  EXPECT_EQ(loss[3], 0.f);
  Tensor dzt(dz.data(), {n, v});
  ops.cross_entropy_backward(zt, st, tt, 0.2f, dzt);
  std::vector<double> dl(size_t(n), 0.2);
  auto g = ref::vjp_complex_step([&](const std::vector<cd>& x) { return ref::cross_entropy(x, tgt, v); }, z, dl);
  EXPECT_TRUE(grad_close(dz, g, "ce dlogits"));
}

INSTANTIATE_TEST_SUITE_P(Scales, Scaled, ::testing::Values(0.25, 1.0, 8.0));

TEST(Embedding, LookupAndScatterAdd) {
  const int64_t v = 11, d = 5;
  auto w = to_f32(randn(size_t(v * d), 1, 51));
  std::vector<int32_t> ids = {3, 0, 3, 10, 3};
  std::vector<float> out(ids.size() * d), dw(size_t(v * d), 1.f);
  Tensor it(ids.data(), {5}, DType::I32), wt(w.data(), {v, d}), ot(out.data(), {5, d}), dwt(dw.data(), {v, d});
  ops.embedding_forward(it, wt, ot);
  for (size_t i = 0; i < ids.size(); ++i)
    for (int64_t j = 0; j < d; ++j) EXPECT_EQ(out[i * d + j], w[ids[i] * d + j]);
  ops.embedding_backward(it, ot, dwt);
  for (int64_t j = 0; j < d; ++j) {
    EXPECT_FLOAT_EQ(dw[3 * d + j], 1.f + 3 * w[3 * d + j]);
    EXPECT_FLOAT_EQ(dw[1 * d + j], 1.f);
  }
}

TEST(Heads, SplitThenMergeIsIdentity) {
  const int64_t b = 2, t = 5, h = 3, hd = 4, c = 3 * h * hd;
  auto x = to_f32(randn(size_t(b * t * c), 1, 61));
  std::vector<float> q(size_t(b * h * t * hd)), back(x.size(), 0.f);
  Tensor xt(x.data(), {b, t, c}), qt(q.data(), {b, h, t, hd}), bt(back.data(), {b, t, c});
  for (int part = 0; part < 3; ++part) {
    ops.split_heads(xt, part * h * hd, qt);
    EXPECT_EQ(q[((1 * h + 2) * t + 3) * hd + 1], x[(1 * t + 3) * c + part * h * hd + 2 * hd + 1]);
    ops.merge_heads(qt, bt, part * h * hd);
  }
  EXPECT_EQ(back, x);
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

}  // namespace
}  // namespace cs

namespace cs {
namespace {
// Large enough to run OpenBLAS's blocked kernels (not the small-matrix path).
TEST(Matmul, LargeGemmMatchesDoubleLoops) {
  const int64_t m = 131, n = 257, k = 199;
  auto a = test::randn(size_t(m * k), 1, 5), b = test::randn(size_t(n * k), 1, 6);
  auto af = test::to_f32(a), bf = test::to_f32(b);
  std::vector<float> c(static_cast<size_t>(m * n));
  Tensor at(af.data(), {m, k}), bt(bf.data(), {n, k}), ct(c.data(), {m, n});
  cpu_ops().matmul(at, false, bt, true, ct, 1.f, 0.f);
  std::vector<double> want(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (int64_t p = 0; p < k; ++p) acc += a[size_t(i * k + p)] * b[size_t(j * k + p)];
      want[size_t(i * n + j)] = acc;
    }
  EXPECT_TRUE(test::all_close(c, want, 1e-5, 1e-5, "sgemm 131x257x199"));
}

std::string self_exe() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, size_t(n)) : std::string();
}

// The machines set OPENBLAS_CORETYPE=Haswell for old OpenBLAS builds; make bench unsets it. The
// GEMM must be right both ways: rerun the GEMM tests in a child with each setting.
TEST(Matmul, RightWithAndWithoutOpenblasCoretype) {
  if (std::getenv("CS_GEMM_CHILD")) GTEST_SKIP() << "child run";
  for (const char* env : {"OPENBLAS_CORETYPE=Haswell", "-u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE"}) {
    const std::string cmd = std::string("env ") + env + " CS_GEMM_CHILD=1 " + self_exe() + " --gtest_filter='Matmul.*' > /dev/null 2>&1";
    EXPECT_EQ(0, std::system(cmd.c_str())) << cmd;
  }
}
}  // namespace
}  // namespace cs
