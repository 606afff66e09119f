// The ops' bf16 arguments (--bf16: the parameters' compute copy and the activations that only feed
// GEMMs). matmul with a bf16 operand multiplies bf16 values and accumulates in f32: against a
// float64 reference over the bf16-rounded inputs it is as close as an fp32 GEMM. The other ops
// compute in f32 whatever their storage: a bf16 input must give exactly the f32 result on its
// widened values, a bf16 output exactly the f32 result rounded to nearest even.
#include "backend_suite.h"
#include "core/half.h"

namespace cs {
namespace {
using test::randn;

using test::to_bf16;
using test::widened;

CS_BACKEND_SUITE(Bf16Ops);

// Every transpose pair, every dtype pair with a bf16 in it, alpha and beta, at a small shape and at
// one large enough for the blocked kernels; the reference rounds f32 operands to bf16 as the op does.
TEST_P(Bf16Ops, MatmulMatchesDoubleLoopsOverRoundedOperands) {
  struct Size {
    int64_t m, n, k;
  };
  for (const Size& sz : {Size{5, 7, 3}, Size{131, 257, 199}})
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb)
        for (int dt = 0; dt < 3; ++dt) {  // (a, b): (bf16, bf16), (bf16, f32), (f32, bf16)
          const int64_t m = sz.m, n = sz.n, k = sz.k;
          SCOPED_TRACE(::testing::Message() << m << "x" << n << "x" << k << " ta " << ta << " tb " << tb << " dtypes " << dt);
          const auto a = randn(size_t(m * k), 1, 11), b = randn(size_t(k * n), 1, 12), c0 = randn(size_t(m * n), 1, 13);
          const auto a16 = to_bf16(a), b16 = to_bf16(b);
          const Shape as = ta ? Shape{k, m} : Shape{m, k}, bs = tb ? Shape{n, k} : Shape{k, n};
          const Tensor at = dt == 2 ? dev.upload(a, as) : dev.upload(a16, as, DType::BF16);
          const Tensor bt = dt == 1 ? dev.upload(b, bs) : dev.upload(b16, bs, DType::BF16);
          const Tensor ct = dev.upload(c0, {m, n});
          ops().matmul(ctx(), at, ta, bt, tb, ct, 0.5f, 2.0f);
          const auto want = ref::matmul(widened(a16), ta, widened(b16), tb, m, n, k, 0.5, 2.0, c0);
          // f32 accumulation of k products: the fp32 GEMM's tolerance scaled by sqrt(k)'s growth.
          EXPECT_TRUE(test::all_close(dev.download(ct), want, 1e-5, 1e-5, "bf16 matmul"));
        }
}

// A bf16 output is the f32 output rounded once (f32 and bf16 operands alike).
TEST_P(Bf16Ops, MatmulIntoBf16IsTheF32ResultRounded) {
  const int64_t m = 70, n = 45, k = 33;
  const auto a = randn(size_t(m * k), 1, 61), b = randn(size_t(n * k), 1, 62);
  const Tensor at = dev.upload(a, {m, k}), bt = dev.upload(to_bf16(b), {n, k}, DType::BF16);
  const Tensor c32 = dev.alloc({m, n}), c16 = dev.alloc({m, n}, DType::BF16);
  ops().matmul(ctx(), at, false, bt, true, c32, 1.f, 0.f);
  ops().matmul(ctx(), at, false, bt, true, c16, 1.f, 0.f);
  const auto want = dev.download(c32);
  const auto got = dev.download<uint16_t>(c16);
  for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(got[i], f32_to_bf16(want[i])) << i;
}

// Plain overwrite and accumulate (the weight-gradient form), and an empty reduction (k = 0).
TEST_P(Bf16Ops, MatmulBetaZeroOneAndEmptyReduction) {
  const int64_t m = 64, n = 48, k = 32;
  const auto a = randn(size_t(m * k), 1, 21), b = randn(size_t(n * k), 1, 22), c0 = randn(size_t(m * n), 1, 23);
  const Tensor at = dev.upload(to_bf16(a), {m, k}, DType::BF16), bt = dev.upload(to_bf16(b), {n, k}, DType::BF16);
  const Tensor c1 = dev.upload(c0, {m, n}), c2 = dev.upload(c0, {m, n});
  ops().matmul(ctx(), at, false, bt, true, c1, 1.f, 0.f);
  ops().matmul(ctx(), at, false, bt, true, c2, 1.f, 1.f);
  const auto r1 = dev.download(c1), r2 = dev.download(c2);
  std::vector<double> plus(r1.size());
  for (size_t i = 0; i < r1.size(); ++i) plus[i] = double(r1[i]) + c0[i];
  EXPECT_TRUE(test::all_close(r2, plus, 1e-5, 1e-6, "beta 1 = beta 0 + c"));
  const Tensor e = dev.alloc({m, 0}, DType::BF16), f = dev.alloc({0, n}, DType::BF16), c3 = dev.upload(c0, {m, n});
  ops().matmul(ctx(), e, false, f, false, c3, 1.f, 2.f);
  std::vector<double> twice(c0.size());
  for (size_t i = 0; i < c0.size(); ++i) twice[i] = 2 * c0[i];
  EXPECT_TRUE(test::all_close(dev.download(c3), twice, 0, 0, "k = 0: c = beta c"));
}

TEST_P(Bf16Ops, RmsnormBf16WeightAndOutputAreTheF32ResultRounded) {
  const int64_t n = 7, d = 96;
  const auto x = randn(size_t(n * d), 1.5, 31), dy = randn(size_t(n * d), 1, 33);
  const auto w16 = to_bf16(randn(size_t(d), 1, 32));
  const Tensor xt = dev.upload(x, {n, d}), w32 = dev.upload(widened(w16), {d}), wb = dev.upload(w16, {d}, DType::BF16);
  const Tensor y32 = dev.alloc({n, d}), yb = dev.alloc({n, d}, DType::BF16), r32 = dev.alloc({n}), rb = dev.alloc({n});
  ops().rmsnorm_forward(ctx(), xt, w32, 1e-6f, y32, r32);
  ops().rmsnorm_forward(ctx(), xt, wb, 1e-6f, yb, rb);
  const auto want = dev.download(y32);
  const auto got = dev.download<uint16_t>(yb);
  for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(got[i], f32_to_bf16(want[i])) << i;
  EXPECT_EQ(dev.download(r32), dev.download(rb));
  // Backward with the bf16 weight: the f32 backward on its widened values, bit for bit.
  const Tensor dyt = dev.upload(dy, {n, d});
  const Tensor dx32 = dev.alloc({n, d}), dxb = dev.alloc({n, d}), dw32 = dev.alloc({d}), dwb = dev.alloc({d});
  ops().rmsnorm_backward(ctx(), xt, w32, r32, dyt, dx32, dw32, false);
  ops().rmsnorm_backward(ctx(), xt, wb, r32, dyt, dxb, dwb, false);
  EXPECT_EQ(dev.download(dx32), dev.download(dxb));
  EXPECT_EQ(dev.download(dw32), dev.download(dwb));
}

TEST_P(Bf16Ops, SwigluHeadsAndEmbeddingInBf16) {
  const int64_t n = 6, f = 37;
  const auto gu16 = to_bf16(randn(size_t(n * 2 * f), 2, 41));
  const Tensor gu = dev.upload(widened(gu16), {n, 2 * f}), gub = dev.upload(gu16, {n, 2 * f}, DType::BF16);
  const Tensor o32 = dev.alloc({n, f}), ob = dev.alloc({n, f}, DType::BF16), obb = dev.alloc({n, f}, DType::BF16);
  ops().swiglu_forward(ctx(), gu, o32);
  ops().swiglu_forward(ctx(), gu, ob);
  ops().swiglu_forward(ctx(), gub, obb);
  auto want = dev.download(o32);
  auto got = dev.download<uint16_t>(ob);
  for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(got[i], f32_to_bf16(want[i])) << "swiglu " << i;
  EXPECT_EQ(got, dev.download<uint16_t>(obb)) << "swiglu of a bf16 gu";
  const Tensor dout = dev.upload(randn(size_t(n * f), 1, 44), {n, f});
  const Tensor dg32 = dev.alloc({n, 2 * f}), dgb = dev.alloc({n, 2 * f});
  ops().swiglu_backward(ctx(), gu, dout, dg32);
  ops().swiglu_backward(ctx(), gub, dout, dgb);
  EXPECT_EQ(dev.download(dg32), dev.download(dgb)) << "swiglu backward of a bf16 gu";
  const Tensor dgbb = dev.alloc({n, 2 * f}, DType::BF16);
  ops().swiglu_backward(ctx(), gub, dout, dgbb);
  const auto dg_want = dev.download(dg32);
  const auto dg_got = dev.download<uint16_t>(dgbb);
  for (size_t i = 0; i < dg_want.size(); ++i) ASSERT_EQ(dg_got[i], f32_to_bf16(dg_want[i])) << "bf16 dgu " << i;

  const int64_t b = 2, h = 3, t = 5, hd = 8, c = 2 * h * hd;
  const Tensor heads = dev.upload(randn(size_t(b * h * t * hd), 1, 42), {b, h, t, hd});
  const Tensor m32 = dev.alloc({b, t, c}), mb = dev.alloc({b, t, c}, DType::BF16);
  ops().merge_heads(ctx(), heads, m32, h * hd);
  ops().merge_heads(ctx(), heads, mb, h * hd);
  want = dev.download(m32);
  got = dev.download<uint16_t>(mb);
  for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(got[i], f32_to_bf16(want[i])) << "merge_heads " << i;
  const Tensor s32 = dev.alloc({b, h, t, hd}), sb = dev.alloc({b, h, t, hd});
  const Tensor widened_m = dev.upload(widened(got), {b, t, c});
  ops().split_heads(ctx(), widened_m, h * hd, s32);
  ops().split_heads(ctx(), mb, h * hd, sb);
  EXPECT_EQ(dev.download(s32), dev.download(sb)) << "split_heads of a bf16 x";

  const int64_t v = 11, d = 16;
  const auto w16 = to_bf16(randn(size_t(v * d), 1, 43));
  const Tensor tok = dev.upload(std::vector<int32_t>{3, 0, 10, 12, 5}, {5});  // 12: another rank's row
  const Tensor e32 = dev.alloc({5, d}), eb = dev.alloc({5, d});
  ops().embedding_forward(ctx(), tok, dev.upload(widened(w16), {v, d}), 1, e32);
  ops().embedding_forward(ctx(), tok, dev.upload(w16, {v, d}, DType::BF16), 1, eb);
  EXPECT_EQ(dev.download(e32), dev.download(eb));
}

// --bf16's attention operands: heads split into bf16 (q, k, v from a bf16 qkv: a copy; from f32:
// rounded), merged from bf16 (the attention output), RoPE on bf16 q and k (the f32 rotation of the
// widened values, rounded once), forward and inverse.
TEST_P(Bf16Ops, HeadsAndRopeWithBf16Heads) {
  const int64_t b = 2, h = 3, t = 7, hd = 8, c = 3 * h * hd;
  const auto x16 = to_bf16(randn(size_t(b * t * c), 1, 71));
  const Tensor xb = dev.upload(x16, {b, t, c}, DType::BF16), x32 = dev.upload(widened(x16), {b, t, c});
  const Shape hs{b, h, t, hd};
  const Tensor s32 = dev.alloc(hs), sbb = dev.alloc(hs, DType::BF16), sfb = dev.alloc(hs, DType::BF16);
  ops().split_heads(ctx(), x32, h * hd, s32);
  ops().split_heads(ctx(), xb, h * hd, sbb);
  ops().split_heads(ctx(), x32, h * hd, sfb);
  const auto heads32 = dev.download(s32);
  const auto heads_bb = dev.download<uint16_t>(sbb);
  for (size_t i = 0; i < heads32.size(); ++i) ASSERT_EQ(heads_bb[i], f32_to_bf16(heads32[i])) << "split " << i;
  EXPECT_EQ(heads_bb, dev.download<uint16_t>(sfb)) << "split of f32 into bf16";
  // Merged back from bf16 into either dtype: the columns it came from.
  const Tensor mb = dev.alloc({b, t, c}, DType::BF16), m32 = dev.alloc({b, t, c});
  ops().merge_heads(ctx(), sbb, mb, h * hd);
  ops().merge_heads(ctx(), sbb, m32, h * hd);
  const auto merged = dev.download<uint16_t>(mb);
  const auto merged32 = dev.download(m32);
  for (int64_t r = 0; r < b * t; ++r)
    for (int64_t j = h * hd; j < 2 * h * hd; ++j) {
      const size_t i = size_t(r * c + j);
      ASSERT_EQ(merged[i], x16[i]) << "merge " << i;
      ASSERT_EQ(merged32[i], bf16_to_f32(x16[i])) << "merge into f32 " << i;
    }
  for (bool inverse : {false, true}) {
    const Tensor r32 = dev.upload(dev.download(s32), hs), rb = dev.upload(heads_bb, hs, DType::BF16);
    ops().rope_apply(ctx(), r32, 10000.f, 3, Tensor(nullptr, {0}), inverse);
    ops().rope_apply(ctx(), rb, 10000.f, 3, Tensor(nullptr, {0}), inverse);
    const auto want = dev.download(r32);
    const auto got = dev.download<uint16_t>(rb);
    for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(got[i], f32_to_bf16(want[i])) << "rope " << inverse << " " << i;
  }
}

// The logits' gradient in bf16, into its own buffer and over the logits themselves (row blocks of
// 64: 200 rows cross three block boundaries; on the GPU, chunks of rows that double), with ignored
// rows and another rank's targets; 53 and 56 columns (the GPU's one- and 4-column paths).
TEST_P(Bf16Ops, CrossEntropyBackwardInBf16IsTheF32GradientRounded) {
  for (const int64_t v : {53, 56}) {
    const int64_t n = 200, offset = 7;
    const auto z = randn(size_t(n * v), 3, 51);
    std::vector<int32_t> tgt(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) tgt[size_t(i)] = i % 9 == 0 ? -1 : int32_t((i * 13) % (v + 2 * offset));
    const Tensor targets = dev.upload(tgt, {n});
    const Tensor logits = dev.upload(z, {n, v}), lse = dev.alloc({n}), tl = dev.alloc({n});
    ops().cross_entropy_forward(ctx(), logits, targets, offset, lse, tl);
    const Tensor d32 = dev.alloc({n, v}), d16 = dev.alloc({n, v}, DType::BF16);
    ops().cross_entropy_backward(ctx(), logits, lse, targets, offset, 0.25f, d32);
    ops().cross_entropy_backward(ctx(), logits, lse, targets, offset, 0.25f, d16);
    const auto want = dev.download(d32);
    const auto got = dev.download<uint16_t>(d16);
    for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(got[i], f32_to_bf16(want[i])) << "own buffer " << i << ", v " << v;
    const Tensor alias(logits.data, logits.shape, DType::BF16, logits.device);
    ops().cross_entropy_backward(ctx(), logits, lse, targets, offset, 0.25f, alias);
    const std::vector<uint16_t> all = dev.download<uint16_t>(logits);  // 2 n v halves: the first n v are the result
    for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(all[i], f32_to_bf16(want[i])) << "in place " << i << ", v " << v;
  }
}

}  // namespace
}  // namespace cs
