// Attention with bf16 q, k, v (--bf16): tile products of bf16 values with f32 accumulation, P and dS
// rounded to bf16 between them, as FlashAttention does in bf16.
//  - The pair-packed tile GEMM (both its AVX-512 BF16 form, where this build has it, and the
//    portable one) equals float64 loops over the same bf16 values to f32 accumulation error, at
//    shapes with row and column remainders, strided operands, overwrite and accumulate.
//  - The ops with bf16 q, k, v, dout against the float64 reference over the same rounded inputs,
//    within bf16's precision (P, dS and o are rounded to 8 bits of mantissa), at one tile and across
//    tiles, odd T, head dims 64, 16 and 6 (not a multiple of the 16-lane vector), ALiBi; lse
//    (f32 statistics of f32 scores) to f32 precision (the GPU's tensor-core kernels: to 2^-8). Packed samples against the f32 kernel (which
//    attention_packed_test checks against the reference). An odd head dim is refused in one line.
#include "backend/cpu/attention_bf16.h"

#include <cstdlib>
#include <cstring>
#include <string>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "backend/cpu/ops.h"
#include "backend_suite.h"
#include "core/half.h"

namespace cs {
namespace {
using test::all_close;
using test::randn;

using test::to_bf16;
using test::widened;

TEST(Bf16PairGemm, MatchesDoubleLoopsOverTheSameValues) {
  struct Size {
    int64_t m, n, kp;
  };
  for (const Size& sz : {Size{1, 1, 1}, Size{13, 37, 5}, Size{64, 64, 32}, Size{7, 130, 9}, Size{6, 16, 64}})
    for (bool acc : {false, true})
      for (bool portable : {false, true}) {
        SCOPED_TRACE(::testing::Message() << sz.m << "x" << sz.n << " kp " << sz.kp << " acc " << acc
                                          << " portable " << portable);
        const int64_t lda = 2 * sz.kp + 4, ldb = (sz.n + 15) / 16 * 16 + 16, ldc = sz.n + 3;
        const auto a = to_bf16(randn(size_t(sz.m * lda), 1, 21));
        auto b = to_bf16(randn(size_t(sz.kp * ldb * 2), 1, 22));
        for (int64_t p = 0; p < sz.kp; ++p)  // the packing's padding columns are zero
          for (int64_t j = sz.n; j < ldb; ++j) b[size_t((p * ldb + j) * 2)] = b[size_t((p * ldb + j) * 2 + 1)] = 0;
        const auto c0 = randn(size_t(sz.m * ldc), 1, 23);
        std::vector<float> c(c0.begin(), c0.end());
        std::vector<double> want(c0.begin(), c0.end());
        const auto aw = widened(a), bw = widened(b);
        for (int64_t i = 0; i < sz.m; ++i)
          for (int64_t j = 0; j < sz.n; ++j) {
            double s = acc ? c0[size_t(i * ldc + j)] : 0.0;
            for (int64_t k = 0; k < 2 * sz.kp; ++k) s += aw[size_t(i * lda + k)] * bw[size_t(((k / 2) * ldb + j) * 2 + k % 2)];
            want[size_t(i * ldc + j)] = s;
          }
        auto* ap = reinterpret_cast<const cpu::Bf16*>(a.data());
        auto* bp = reinterpret_cast<const cpu::Bf16*>(b.data());
        if (portable)
          cpu::gemm_bf16_pairs_portable(sz.m, sz.n, sz.kp, ap, lda, bp, ldb, c.data(), ldc, acc);
        else
          cpu::gemm_bf16_pairs(sz.m, sz.n, sz.kp, ap, lda, bp, ldb, c.data(), ldc, acc);
        // Columns past n (inside ldc) are untouched: they still hold c0.
        EXPECT_TRUE(all_close(c, want, 1e-5, 1e-5, "pair gemm"));
      }
}

// The diagonal tile's shortcuts: under Tri::Columns every c(i, j) with j <= i equals the full
// product (the rest is unspecified); under Tri::Reduction, with a's row i zero past column i, all
// of c does. Square tiles of the kernel's sizes and partial ones (row blocks of 6 across them).
TEST(Bf16PairGemm, DiagonalTileShortcutsKeepWhatTheMaskLeaves) {
  for (int64_t n : {64, 37, 6, 1})
    for (cpu::Tri tri : {cpu::Tri::Columns, cpu::Tri::Reduction}) {
      const bool cols = tri == cpu::Tri::Columns;
      SCOPED_TRACE(::testing::Message() << "n " << n << (cols ? " columns" : " reduction"));
      // Columns: c (n x n) = a (n x 64) b (64 x n). Reduction: c (n x 32) = a (n x n, lower) b.
      const int64_t k = cols ? 64 : (n + 1) / 2 * 2, nc = cols ? n : 32, kp = k / 2, lda = k, ldb = 64, ldc = 64;
      auto a = to_bf16(randn(size_t(n * lda), 1, 24));
      if (!cols)
        for (int64_t i = 0; i < n; ++i)
          for (int64_t j = i + 1; j < k; ++j) a[size_t(i * lda + j)] = 0;
      auto b = to_bf16(randn(size_t(kp * ldb * 2), 1, 25));
      for (int64_t p = 0; p < kp; ++p)
        for (int64_t j = nc; j < ldb; ++j) b[size_t((p * ldb + j) * 2)] = b[size_t((p * ldb + j) * 2 + 1)] = 0;
      auto* ap = reinterpret_cast<const cpu::Bf16*>(a.data());
      auto* bp = reinterpret_cast<const cpu::Bf16*>(b.data());
      for (bool acc : {false, true}) {
        std::vector<float> full(size_t(n * ldc), 0.5f), tri_c(full);
        cpu::gemm_bf16_pairs(n, nc, kp, ap, lda, bp, ldb, full.data(), ldc, acc);
        cpu::gemm_bf16_pairs(n, nc, kp, ap, lda, bp, ldb, tri_c.data(), ldc, acc, tri);
        for (int64_t i = 0; i < n; ++i)
          for (int64_t j = 0; j < (cols ? i + 1 : nc); ++j)
            ASSERT_EQ(tri_c[size_t(i * ldc + j)], full[size_t(i * ldc + j)]) << i << "," << j << " acc " << acc;
      }
    }
}

struct Case {
  int64_t b, h, t, hd;
  bool alibi;
};

class Bf16Attention : public ::testing::TestWithParam<std::tuple<std::string, Case>> {
 protected:
  test::OnDevice dev{std::get<0>(GetParam())};
  CS_SKIP_WITHOUT_DEVICE()
};

std::vector<double> slopes_for(int64_t h, bool alibi) {
  if (!alibi) return {};
  std::vector<float> s(static_cast<size_t>(h));
  alibi_slopes(h, s.data());
  return {s.begin(), s.end()};
}

// lse's absolute tolerance: `otherwise`, or, where the GPU's tensor-core kernels run (head dims
// 32, 64, 128, unless CS_CUDA_ATTENTION=portable), 2^-8. The CPU and the portable kernels sum the
// f32 P: their lse is f32 statistics of the scores. The tensor-core kernels sum the P they round to
// bf16 for P V, so that O is normalised by what P V summed: each term is off by at most 2^-8
// relative (bf16's unit roundoff, 8 significant bits), so is the sum, and lse = m + log(sum) by
// at most log(1 + 2^-8) < 2^-8.
double lse_atol(test::OnDevice& dev, int64_t hd, double otherwise) {
  const char* kernels = std::getenv("CS_CUDA_ATTENTION");
  const bool portable = kernels && std::string(kernels) == "portable";
  const bool rounded_sum =
      dev.backend().device() == Device::CUDA && !portable && (hd == 32 || hd == 64 || hd == 128);
  return rounded_sum ? 0x1p-8 : otherwise;
}

TEST_P(Bf16Attention, MatchesTheReferenceOverRoundedInputs) {
  const Case c = std::get<1>(GetParam());
  const size_t n = size_t(c.b * c.h * c.t * c.hd);
  const auto q16 = to_bf16(randn(n, 1.5, 31)), k16 = to_bf16(randn(n, 1.5, 32)), v16 = to_bf16(randn(n, 1, 33)),
             dy16 = to_bf16(randn(n, 1, 34));
  const auto q = widened(q16), k = widened(k16), v = widened(v16), dy = widened(dy16);
  const auto sl = slopes_for(c.h, c.alibi);
  const Shape s{c.b, c.h, c.t, c.hd};
  Tensor qt = dev.upload(q16, s, DType::BF16), kt = dev.upload(k16, s, DType::BF16),
         vt = dev.upload(v16, s, DType::BF16), dyt = dev.upload(dy16, s, DType::BF16);
  Tensor st = dev.upload(sl, {int64_t(sl.size())}), ot = dev.alloc(s, DType::BF16), lt = dev.alloc({c.b, c.h, c.t});
  Tensor dqt = dev.alloc(s), dkt = dev.alloc(s), dvt = dev.alloc(s), none(nullptr, {0});
  Ctx& ctx = dev.ctx();
  ctx.ops.attention_forward(ctx, qt, kt, vt, st, none, ot, lt);
  ctx.ops.attention_backward(ctx, qt, kt, vt, st, none, ot, lt, dyt, dqt, dkt, dvt);

  const auto want_o = ref::attention(q, k, v, sl, c.b, c.h, c.t, c.hd);
  std::vector<double> rq, rk, rv;
  ref::attention_backward(q, k, v, sl, dy, c.b, c.h, c.t, c.hd, rq, rk, rv);
  // bf16 keeps 8 significant bits (relative rounding 2^-8): o is a rounded average of rounded
  // probabilities; the gradients sum products of rounded P and dS. Errors of a few 2^-8 relative
  // to the values' scale; a wrong mask, scale or tile is off by O(1). Measured over these cases:
  // o within 0.0084 absolute (values of scale 1-3), gradients within 0.015, cosines above
  // 0.999998 (o) and 0.99999 (gradients); the floors below keep a 10x margin on 1 - cosine.
  auto scaled = [](const std::vector<double>& r, double f) { return f * std::max(1.0, test::max_abs(r)); };
  EXPECT_TRUE(all_close(widened(dev.download<uint16_t>(ot)), want_o, scaled(want_o, 1e-2), 1e-2, "bf16 o", 0.99998));
  // lse: f32 statistics of scores that are exact products of bf16 values summed in f32.
  std::vector<double> want_lse(size_t(c.b * c.h * c.t));
  {
    std::vector<float> o32(n), l32(want_lse.size());
    std::vector<float> qf(q.begin(), q.end()), kf(k.begin(), k.end()), vf(v.begin(), v.end()), sf(sl.begin(), sl.end());
    auto cpu = cpu_backend().make_context();
    cpu::attention_naive_forward(*cpu, Tensor(qf.data(), s), Tensor(kf.data(), s), Tensor(vf.data(), s),
                                 Tensor(sf.data(), {int64_t(sf.size())}), Tensor(o32.data(), s),
                                 Tensor(l32.data(), {c.b, c.h, c.t}));
    want_lse.assign(l32.begin(), l32.end());
  }
  EXPECT_TRUE(all_close(dev.download(lt), want_lse, lse_atol(dev, c.hd, 1e-5), 1e-5, "bf16 lse"));
  EXPECT_TRUE(all_close(dev.download(dqt), rq, scaled(rq, 2e-2), 2e-2, "bf16 dq", 0.9999));
  EXPECT_TRUE(all_close(dev.download(dkt), rk, scaled(rk, 2e-2), 2e-2, "bf16 dk", 0.9999));
  EXPECT_TRUE(all_close(dev.download(dvt), rv, scaled(rv, 2e-2), 2e-2, "bf16 dv", 0.9999));
}

// Forward and backward on q, k, v, dout (bf16 values), as bf16 or as their f32 widening, with the
// given segment ids and slopes: o (widened), lse, dq, dk, dv.
std::vector<std::vector<float>> run_attention(test::OnDevice& dev, const Shape& s, bool bf16,
                                              const std::vector<std::vector<uint16_t>>& qkvd, const Tensor& slopes,
                                              const Tensor& segments) {
  Ctx& ctx = dev.ctx();
  auto up = [&](const std::vector<uint16_t>& x) {
    return bf16 ? dev.upload(x, s, DType::BF16) : dev.upload(widened(x), s);
  };
  const DType io = bf16 ? DType::BF16 : DType::F32;
  Tensor qt = up(qkvd[0]), kt = up(qkvd[1]), vt = up(qkvd[2]), dyt = up(qkvd[3]), ot = dev.alloc(s, io);
  Tensor lt = dev.alloc({s[0], s[1], s[2]}), dqt = dev.alloc(s), dkt = dev.alloc(s), dvt = dev.alloc(s);
  ctx.ops.attention_forward(ctx, qt, kt, vt, slopes, segments, ot, lt);
  ctx.ops.attention_backward(ctx, qt, kt, vt, slopes, segments, ot, lt, dyt, dqt, dkt, dvt);
  std::vector<float> o = bf16 ? test::to_f32(widened(dev.download<uint16_t>(ot))) : dev.download(ot);
  return {o, dev.download(lt), dev.download(dqt), dev.download(dkt), dev.download(dvt)};
}

// Packed samples (segment ids): the bf16 kernel against the f32 one on the same rounded inputs.
TEST_P(Bf16Attention, PackedSamplesMatchTheF32Kernel) {
  const Case c = std::get<1>(GetParam());
  const size_t n = size_t(c.b * c.h * c.t * c.hd);
  const auto q16 = to_bf16(randn(n, 1.5, 41)), k16 = to_bf16(randn(n, 1.5, 42)), v16 = to_bf16(randn(n, 1, 43)),
             dy16 = to_bf16(randn(n, 1, 44));
  std::vector<int32_t> seg(size_t(c.b * c.t));
  for (int64_t bi = 0; bi < c.b; ++bi)  // samples of 1, t/3 and the rest tokens (then 5 more, ids repeating)
    for (int64_t t = 0; t < c.t; ++t)
      seg[size_t(bi * c.t + t)] = t < 1 ? 0 : t < 1 + c.t / 3 ? 1 : t < c.t - 5 ? 0 : 2;
  const auto sl = slopes_for(c.h, c.alibi);
  const Shape s{c.b, c.h, c.t, c.hd};
  Tensor segt = dev.upload(seg, {c.b, c.t}), st = dev.upload(sl, {int64_t(sl.size())});
  std::vector<std::vector<float>> outs[2];
  for (int bf16 = 0; bf16 < 2; ++bf16) outs[bf16] = run_attention(dev, s, bf16, {q16, k16, v16, dy16}, st, segt);
  const char* names[] = {"o", "lse", "dq", "dk", "dv"};
  for (size_t i = 0; i < 5; ++i) {
    const std::vector<double> want(outs[0][i].begin(), outs[0][i].end());
    const double f = i == 1 ? 1e-5 : i == 0 ? 1e-2 : 2e-2;
    const double scaled = f * std::max(1.0, test::max_abs(want));
    const double atol = i == 1 ? lse_atol(dev, c.hd, scaled) : scaled;
    EXPECT_TRUE(all_close(outs[1][i], want, atol, f, names[i], 0.9999));
  }
}

// Work is split over (batch, head) pairs and query blocks, each done by one thread in a fixed order:
// the same bits for any thread count, f32 and bf16, with packed samples (rows whose tiles are all
// masked) and ALiBi. Each count runs after another's call has left its scratch dirty.
TEST_P(Bf16Attention, SameBitsForOneTwoAndThreeThreads) {
#ifndef _OPENMP
  GTEST_SKIP() << "built without OpenMP";
#else
  const Case c = std::get<1>(GetParam());
  const size_t n = size_t(c.b * c.h * c.t * c.hd);
  const auto q16 = to_bf16(randn(n, 1.5, 61)), k16 = to_bf16(randn(n, 1.5, 62)), v16 = to_bf16(randn(n, 1, 63)),
             dy16 = to_bf16(randn(n, 1, 64));
  std::vector<int32_t> seg(size_t(c.b * c.t));
  for (int64_t bi = 0; bi < c.b; ++bi)
    for (int64_t t = 0; t < c.t; ++t) seg[size_t(bi * c.t + t)] = t < c.t / 2 ? 3 : t < c.t - 3 ? 4 : 3;
  const auto sl = slopes_for(c.h, true);
  const Shape s{c.b, c.h, c.t, c.hd};
  Tensor segt = dev.upload(seg, {c.b, c.t}), st = dev.upload(sl, {int64_t(sl.size())});
  const int saved = omp_get_max_threads();
  for (int bf16 = 0; bf16 < 2; ++bf16) {
    std::vector<std::vector<float>> first;
    for (int threads : {1, 2, 3}) {
      omp_set_num_threads(threads);
      const auto got = run_attention(dev, s, bf16, {q16, k16, v16, dy16}, st, segt);
      if (first.empty()) first = got;
      for (size_t i = 0; i < got.size(); ++i)
        EXPECT_EQ(0, std::memcmp(got[i].data(), first[i].data(), got[i].size() * sizeof(float)))
            << "output " << i << (bf16 ? " bf16" : " f32") << " at " << threads << " threads";
    }
  }
  omp_set_num_threads(saved);
#endif
}

INSTANTIATE_TEST_SUITE_P(Shapes, Bf16Attention,
                         ::testing::Combine(::testing::ValuesIn(test::test_backends()),
                                            ::testing::Values(Case{2, 3, 17, 8, false}, Case{1, 2, 65, 6, true},
                                                              Case{1, 2, 130, 16, true}, Case{2, 2, 200, 64, false},
                                                              Case{1, 1, 64, 64, true}, Case{1, 2, 130, 128, true})),
                         [](const ::testing::TestParamInfo<std::tuple<std::string, Case>>& info) {
                           const Case& c = std::get<1>(info.param);
                           return std::get<0>(info.param) + "_b" + std::to_string(c.b) + "_h" + std::to_string(c.h) +
                                  "_t" + std::to_string(c.t) + "_hd" + std::to_string(c.hd) +
                                  (c.alibi ? "_alibi" : "_nobias");
                         });

class Bf16AttentionArgs : public test::OnBackend {};
INSTANTIATE_TEST_SUITE_P(Backends, Bf16AttentionArgs, ::testing::ValuesIn(test::test_backends()),
                         test::backend_param_name);

TEST_P(Bf16AttentionArgs, OddHeadDimAndMixedDtypesAreRefused) {
  const Shape s{1, 2, 9, 5};
  Tensor q = dev.alloc(s, DType::BF16), k = dev.alloc(s, DType::BF16), v = dev.alloc(s, DType::BF16);
  Tensor o = dev.alloc(s, DType::BF16), l = dev.alloc({1, 2, 9}), none(nullptr, {0});
  Ctx& ctx = dev.ctx();
  EXPECT_TRUE(test::throws_error_naming([&] { ctx.ops.attention_forward(ctx, q, k, v, none, none, o, l); },
                                        {"even head dim", "got 5"}));
  Tensor o32 = dev.alloc(s);
  EXPECT_TRUE(test::throws_error_naming([&] { ctx.ops.attention_forward(ctx, q, k, v, none, none, o32, l); },
                                        {"attention_forward", "argument o", "bf16"}));
}

}  // namespace
}  // namespace cs
