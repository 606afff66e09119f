// Every maths op on every backend this build has (test_backends(), ggml test-backend-ops style):
// inputs are uploaded into device buffers, the op runs on the backend's context, outputs are
// downloaded and checked, forwards against the float64 scalar reference (tests/ref/ops_ref.h),
// backwards against complex-step derivatives of that reference. Small awkward shapes (odd T,
// 3 heads, D = 96, vocab 37), inputs swept over scales 2^k.
#include "backend_suite.h"
#include "core/half.h"

namespace cs {
namespace {
using ref::cd;
using test::all_close;
using test::grad_close;
using test::randn;
using test::Scaled;
using test::to_f32;

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
      const auto want = ref::matmul(a, ta, b, tb, m, n, k, 0.5, 2.0, c0);
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

// d = 96 and 30: the GPU's 4-column (16-byte) and one-column paths.
TEST_P(Scaled, RmsNormForwardBackward) {
  const int64_t n = 5;
  for (const int64_t d : {96, 30})
  // eps must sit inside the square root: at Megatron's init scale (0.02: mean squares ~4e-4) a
  // large eps moves every output, so 1/(sqrt(ms) + eps) fails here.
  for (const double eps : {1e-6, 1e-2}) {
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
}

// hd = 8 and 6: the GPU's 4-pair (16-byte table) and one-pair paths.
TEST_P(Scaled, RopeForwardBackward) {
  const int64_t b = 2, h = 3, t = 17;
  for (const int64_t hd : {8, 6})
  for (int64_t pos0 : {0, 5}) {
    auto x = randn(size_t(b * h * t * hd), scale(), 21), dy = randn(x.size(), 1, 22);
    Tensor xt = dev.upload(x, {b, h, t, hd}), dyt = dev.upload(dy, {b, h, t, hd});
    ops().rope_apply(ctx(), xt, 10000.f, pos0, Tensor(nullptr, {0}), false);
    EXPECT_TRUE(all_close(dev.download(xt), ref::rope(x, b * h, t, hd, 10000.0, pos0),
                          tol::kF32Atol, tol::kF32Rtol, "rope"));
    ops().rope_apply(ctx(), dyt, 10000.f, pos0, Tensor(nullptr, {0}), true);
    auto g = ref::vjp_complex_step(
        [&](const std::vector<cd>& v) { return ref::rope(v, b * h, t, hd, 10000.0, pos0); }, x, dy);
    EXPECT_TRUE(grad_close(dev.download(dyt), g, "rope dx"));
  }
}

// f = 13 and 16: the GPU's one-column and 8-column (16-byte) paths.
TEST_P(Scaled, SwigluForwardBackward) {
  for (const int64_t f : {13, 16}) {
    const int64_t n = 7;
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
}

// v = 37 and 40: the GPU's one-column and 4-column (16-byte) paths.
TEST_P(Scaled, CrossEntropyForwardBackward) {
  for (const int64_t v : {37, 40}) {
    const int64_t n = 6;
    auto z = randn(size_t(n * v), scale(), 41);
    std::vector<int32_t> tgt = {3, 0, 36, -1, 17, 5};
    Tensor zt = dev.upload(z, {n, v}), tt = dev.upload(tgt, {n}), lt = dev.alloc({n}),
           st = dev.alloc({n}), zt_t = dev.alloc({n});
    ops().cross_entropy_forward(ctx(), zt, tt, 0, st, zt_t);
    ops().cross_entropy_combine(ctx(), st, zt_t, tt, lt, st);  // one part: lse in place
    const std::vector<float> loss = dev.download(lt);
    EXPECT_TRUE(
        all_close(loss, ref::cross_entropy(z, tgt, v), tol::kF32Atol, tol::kF32Rtol, "ce loss"));
    EXPECT_EQ(loss[3], 0.f);
    Tensor dzt = dev.alloc({n, v});
    ops().cross_entropy_backward(ctx(), zt, st, tt, 0, 0.2f, dzt);
    std::vector<double> dl(size_t(n), 0.2);
    auto g = ref::vjp_complex_step(
        [&](const std::vector<cd>& x) { return ref::cross_entropy(x, tgt, v); }, z, dl);
    EXPECT_TRUE(grad_close(dev.download(dzt), g, "ce dlogits"));
  }
}

// The vocabulary split over three ranks' column slices (sizes 12, 12, 13 of 37): the combined
// losses and every rank's dlogits equal the float64 reference of the whole row; targets land on
// every rank, on slice edges, and one is ignored.
TEST_P(Scaled, CrossEntropyVocabParallel) {
  const int64_t n = 6, v = 37;
  const std::vector<int64_t> lo = {0, 12, 24, 37};
  auto z = randn(size_t(n * v), scale(), 43);
  std::vector<int32_t> tgt = {11, 12, 36, -1, 24, 0};
  const int64_t p = int64_t(lo.size()) - 1;
  Tensor tt = dev.upload(tgt, {n}), parts = dev.alloc({p, n});
  std::vector<Tensor> slices;
  std::vector<float> tl_host(size_t(n), 0.f);
  for (int64_t r = 0; r < p; ++r) {
    const int64_t w = lo[size_t(r + 1)] - lo[size_t(r)];
    std::vector<double> zr(size_t(n * w));
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < w; ++j) zr[size_t(i * w + j)] = z[size_t(i * v + lo[size_t(r)] + j)];
    slices.push_back(dev.upload(zr, {n, w}));
    Tensor tl = dev.alloc({n});
    ops().cross_entropy_forward(ctx(), slices.back(), tt, lo[size_t(r)],
                                parts.slice_rows(r, r + 1).view({n}), tl);
    const std::vector<float> t = dev.download(tl);
    for (int64_t i = 0; i < n; ++i) tl_host[size_t(i)] += t[size_t(i)];  // the ranks' sum
  }
  Tensor tls = dev.upload(tl_host, {n}), lt = dev.alloc({n}), st = dev.alloc({n});
  ops().cross_entropy_combine(ctx(), parts, tls, tt, lt, st);
  EXPECT_TRUE(all_close(dev.download(lt), ref::cross_entropy(z, tgt, v), tol::kF32Atol, tol::kF32Rtol,
                        "vocab-parallel ce loss"));
  std::vector<double> dl(size_t(n), 0.5);
  auto g = ref::vjp_complex_step(
      [&](const std::vector<cd>& x) { return ref::cross_entropy(x, tgt, v); }, z, dl);
  for (int64_t r = 0; r < p; ++r) {
    const int64_t w = lo[size_t(r + 1)] - lo[size_t(r)];
    ops().cross_entropy_backward(ctx(), slices[size_t(r)], st, tt, lo[size_t(r)], 0.5f, slices[size_t(r)]);
    const std::vector<float> d = dev.download(slices[size_t(r)]);
    std::vector<double> gr(size_t(n * w));
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < w; ++j) gr[size_t(i * w + j)] = g[size_t(i * v + lo[size_t(r)] + j)];
    EXPECT_TRUE(grad_close(d, gr, "vocab-parallel ce dlogits"));
  }
}

INSTANTIATE_TEST_SUITE_P(Scales, Scaled,
                         ::testing::Combine(::testing::ValuesIn(test::test_backends()),
                                            ::testing::Values(0.02, 0.25, 1.0, 8.0)),
                         test::backend_scale_param_name);

CS_BACKEND_SUITE(Embedding);

TEST_P(Embedding, LookupAndScatterAdd) {
  const int64_t v = 11, d = 5;
  auto w = to_f32(randn(size_t(v * d), 1, 51));
  std::vector<int32_t> ids = {3, 0, 3, 10, 3};
  Tensor it = dev.upload(ids, {5}), wt = dev.upload(w, {v, d}), ot = dev.alloc({5, d});
  Tensor dwt = dev.upload(std::vector<float>(size_t(v * d), 1.f), {v, d});
  ops().embedding_forward(ctx(), it, wt, 0, ot);
  const std::vector<float> out = dev.download(ot);
  for (size_t i = 0; i < ids.size(); ++i)
    for (int64_t j = 0; j < d; ++j) EXPECT_EQ(out[i * d + j], w[ids[i] * d + j]);
  ops().embedding_backward(ctx(), it, 0, ot, dwt);
  const std::vector<float> dw = dev.download(dwt);
  for (int64_t j = 0; j < d; ++j) {
    EXPECT_FLOAT_EQ(dw[3 * d + j], 1.f + 3 * w[3 * d + j]);
    EXPECT_FLOAT_EQ(dw[1 * d + j], 1.f);
  }
}

// A rank holding vocabulary rows [4, 8) of 11: its tokens are looked up, the others are zero rows
// (forward) and leave the gradient alone (backward).
TEST_P(Embedding, VocabParallelSliceZeroesOtherTokens) {
  const int64_t v = 4, d = 3, off = 4;
  auto w = to_f32(randn(size_t(v * d), 1, 53));
  std::vector<int32_t> ids = {3, 4, 7, 8, 5, 0};
  Tensor it = dev.upload(ids, {6}), wt = dev.upload(w, {v, d}), ot = dev.alloc({6, d});
  ops().embedding_forward(ctx(), it, wt, off, ot);
  const std::vector<float> out = dev.download(ot);
  for (size_t i = 0; i < ids.size(); ++i) {
    const bool mine = ids[i] >= off && ids[i] < off + v;
    for (int64_t j = 0; j < d; ++j)
      EXPECT_EQ(out[i * d + j], mine ? w[(ids[i] - off) * d + j] : 0.f) << "token " << ids[i];
  }
  Tensor dwt = dev.alloc({v, d});
  ops().embedding_backward(ctx(), it, off, dev.upload(std::vector<float>(size_t(6 * d), 1.f), {6, d}), dwt);
  const std::vector<float> dw = dev.download(dwt);
  for (int64_t r = 0; r < v; ++r)
    for (int64_t j = 0; j < d; ++j)
      EXPECT_EQ(dw[size_t(r * d + j)], (r == 0 || r == 1 || r == 3) ? 1.f : 0.f) << "row " << r + off;
}

// Each row's gradient is the sum of its tokens' rows in token order, bit for bit (the CPU walks
// the tokens; the GPU sorts them stably by row and sums each row's run): runs longer than the
// GPU's staged chunk of 256, tokens outside the shard, a hidden size past one pass of the GPU's
// columns (2048), more tokens than its grid has blocks (65535).
TEST_P(Embedding, BackwardSumsEachRowInTokenOrder) {
  const int64_t v = 40, off = 10;
  for (const auto& [n, d] : {std::pair<int64_t, int64_t>{1500, 37}, {600, 2100}, {70000, 5}}) {
    SCOPED_TRACE("tokens " + std::to_string(n) + ", hidden " + std::to_string(d));
    std::vector<int32_t> ids(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) ids[size_t(i)] = i % 3 == 0 ? 17 : int32_t((i * 7919) % 60);
    const auto g = to_f32(randn(size_t(n * d), 1, 55)), w0 = to_f32(randn(size_t(v * d), 1, 56));
    std::vector<float> want = w0;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t row = ids[size_t(i)] - off;
      if (row < 0 || row >= v) continue;
      for (int64_t j = 0; j < d; ++j) want[size_t(row * d + j)] += g[size_t(i * d + j)];
    }
    Tensor dwt = dev.upload(w0, {v, d});
    ops().embedding_backward(ctx(), dev.upload(ids, {n}), off, dev.upload(g, {n, d}), dwt);
    const std::vector<float> got = dev.download(dwt);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_EQ(got[i], want[i]) << "row " << i / size_t(d) + off << " col " << i % size_t(d);
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
  // The same step twice: plain, and writing the bf16 copy in the same pass (the f32 results equal).
  Tensor p2 = dev.upload(p, {n}), m2 = dev.upload(m, {n}), v2 = dev.upload(v, {n}), half = dev.alloc({n}, DType::BF16);
  // And with clipping fused (grad_scale): the same bits as scaling g in a pass of its own, then
  // stepping; g itself left as it was.
  const float coeff = 0.37f;
  Tensor p3 = dev.upload(p, {n}), m3 = dev.upload(m, {n}), v3 = dev.upload(v, {n});
  Tensor p4 = dev.upload(p, {n}), m4 = dev.upload(m, {n}), v4 = dev.upload(v, {n}), g4 = dev.upload(g, {n});
  ops().adamw_update(ctx(), pt, gt, mt, vt, lr, b1, b2, eps, wd, step, 1.f, Tensor{nullptr, {0}, DType::BF16});
  ops().adamw_update(ctx(), p2, gt, m2, v2, lr, b1, b2, eps, wd, step, 1.f, half);
  ops().adamw_update(ctx(), p3, gt, m3, v3, lr, b1, b2, eps, wd, step, coeff, Tensor{nullptr, {0}, DType::BF16});
  ops().scale(ctx(), g4, coeff);
  ops().adamw_update(ctx(), p4, g4, m4, v4, lr, b1, b2, eps, wd, step, 1.f, Tensor{nullptr, {0}, DType::BF16});
  EXPECT_EQ(dev.download(p3), dev.download(p4));
  EXPECT_EQ(dev.download(m3), dev.download(m4));
  EXPECT_EQ(dev.download(v3), dev.download(v4));
  EXPECT_EQ(dev.download(gt), to_f32(g)) << "the fused step must not write g";
  std::vector<double> p5 = p, m5 = m, v5 = v, g5 = g;
  for (auto& x : g5) x = double(float(x) * coeff);
  ref::adamw(p5, g5, m5, v5, lr, b1, b2, eps, wd, step);
  EXPECT_TRUE(all_close(dev.download(p3), p5, tol::kF32Atol, tol::kF32Rtol, "adamw p, clipped"));
  EXPECT_FALSE(all_close(dev.download(p3), dev.download(pt), 0, 0, "")) << "grad_scale had no effect";
  ref::adamw(p, g, m, v, lr, b1, b2, eps, wd, step);
  EXPECT_TRUE(all_close(dev.download(pt), p, tol::kF32Atol, tol::kF32Rtol, "adamw p"));
  EXPECT_TRUE(all_close(dev.download(mt), m, tol::kF32Atol, tol::kF32Rtol, "adamw m"));
  EXPECT_TRUE(all_close(dev.download(vt), v, tol::kF32Atol, tol::kF32Rtol, "adamw v"));
  const auto p32 = dev.download(pt);
  EXPECT_EQ(dev.download(p2), p32);
  const auto h = dev.download<uint16_t>(half);
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(h[size_t(i)], f32_to_bf16(p32[size_t(i)])) << "bf16 copy " << i;
}


}  // namespace
}  // namespace cs
