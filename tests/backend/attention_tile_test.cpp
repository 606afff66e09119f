// The flash loops' per-tile element-wise work (backend/cpu/attention_tile.h): the one-pass vector
// functions (AVX-512 where this build has it) and their portable twins, both against float64 on
// the same scores, on tiles that meet every mask: off the diagonal, on it, a partial tile at the
// sequence's end with odd rows and columns, ALiBi, and packed samples whose starts fall inside the
// tile or after it (a row with no visible key: the forward keeps m = -inf and P = 0).
//  - softmax: P = exp(score - m_new), m_new = max(m, row max), corr = exp(m - m_new),
//    l = l corr + sum P; f32 and bf16 P (bf16: the rounding of the f32 value, within one ulp).
//  - p_ds: P = exp(score - lse), dS = P (dP - D) scale; f32 in place; bf16 as rows and row pairs
//    with the odd row past the tile zero.
//  - Every column past the tile's (and every masked one) is exactly 0.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "backend/cpu/attention_tile.h"
#include "core/half.h"
#include "test_util.h"

namespace cs {
namespace {
using cpu::Bf16;
using cpu::flash::kBk;
using cpu::flash::kBq;
using cpu::flash::TileArgs;

struct TileCase {
  const char* name;
  int64_t rows, cols, i0, j0;
  float slope;
  std::vector<int32_t> starts;  // per row; empty: all 0
};

std::vector<TileCase> cases() {
  std::vector<int32_t> packed(kBq);
  for (int64_t r = 0; r < kBq; ++r) packed[size_t(r)] = r < 10 ? 0 : r < 40 ? 64 + 10 : 64 + 40;  // i0 = j0 = 64
  std::vector<int32_t> late(kBq);
  for (int64_t r = 0; r < kBq; ++r) late[size_t(r)] = r < 20 ? 5 : 64 + 20;  // rows 20.. start after the tile
  return {{"off-diagonal", 64, 64, 128, 0, 0.f, {}},
          {"diagonal", 64, 64, 64, 64, 0.f, {}},
          {"partial odd", 37, 37, 128, 128, 0.f, {}},
          {"off-diagonal partial", 37, 64, 128, 64, 0.f, {}},
          {"alibi", 64, 64, 128, 64, -0.25f, {}},
          {"packed", 64, 64, 64, 64, 0.f, packed},
          {"packed late", 64, 64, 64, 0, -0.0625f, late}};
}

int32_t start_of(const TileCase& c, int64_t r) { return c.starts.empty() ? 0 : c.starts[size_t(r)]; }
bool visible(const TileCase& c, int64_t r, int64_t col) {
  const int64_t i = c.i0 + r, j = c.j0 + col;
  return col < c.cols && j <= i && j >= start_of(c, r);
}
double score(const TileCase& c, const std::vector<float>& s, float scale, int64_t r, int64_t col) {
  return double(scale) * s[size_t(r * kBk + col)] + double(c.slope) * double((c.j0 + col) - (c.i0 + r));
}
double magnitude(const TileCase& c, const std::vector<float>& s, float scale, int64_t r, int64_t col) {
  return std::abs(double(scale) * s[size_t(r * kBk + col)]) + std::abs(double(c.slope) * double((c.j0 + col) - (c.i0 + r)));
}
float widen(Bf16 x) { return bf16_to_f32(x.bits); }

// exp(x) of an x that f32 arithmetic formed from terms of total magnitude `mag`: its relative
// error grows with the terms' rounding (ALiBi's bias reaches tens at long distances).
double exp_rel(double mag) { return 2e-6 + 4 * 6e-8 * mag; }

// |got - want| within rel * |want| + abs.
void expect_near_rel(double got, double want, double rel, double abs, const char* what, int64_t r, int64_t col) {
  EXPECT_LE(std::abs(got - want), rel * std::abs(want) + abs) << what << " row " << r << " col " << col;
}

TEST(AttentionTile, SoftmaxAgainstFloat64) {
  const float scale = 0.125f;
  for (const TileCase& c : cases())
    for (bool portable : {false, true})
      for (bool bf16 : {false, true}) {
        SCOPED_TRACE(::testing::Message() << c.name << (portable ? " portable" : " vector") << (bf16 ? " bf16" : " f32"));
        const auto sd = test::randn(size_t(kBq * kBk), 3.0, 31);
        std::vector<float> s(sd.begin(), sd.end()), m(kBq), l(kBq), corr(kBq, -1.f);
        const auto md = test::randn(kBq, 1.0, 32);
        for (int64_t r = 0; r < kBq; ++r) {  // a running state: empty rows (every 5th) and earlier tiles'
          m[size_t(r)] = r % 5 == 0 ? -INFINITY : float(md[size_t(r)]);
          l[size_t(r)] = r % 5 == 0 ? 0.f : 1.5f + float(r) / 64;
        }
        for (int64_t r = 0; r < kBq; ++r)  // what the mask hides or the tile lacks is never read
          for (int64_t col = 0; col < kBk; ++col)
            if (r >= c.rows || !visible(c, r, col)) s[size_t(r * kBk + col)] = NAN;
        const auto s0 = s, m0 = m, l0 = l;
        std::vector<float> pf(size_t(kBq * kBk), 7.f);
        std::vector<Bf16> pb(size_t(kBq * kBk), Bf16{0x4000});
        std::vector<int32_t> zeros(kBq, 0);
        const TileArgs ta{c.rows, c.cols, c.i0, c.j0, scale, c.slope, c.starts.empty() ? zeros.data() : c.starts.data()};
        float *sp = s.data(), *mp = m.data(), *lp = l.data(), *cp = corr.data();
        if (bf16 && portable) cpu::flash::softmax_tile_portable(sp, ta, mp, lp, cp, pb.data());
        if (bf16 && !portable) cpu::flash::softmax_tile(sp, ta, mp, lp, cp, pb.data());
        if (!bf16 && portable) cpu::flash::softmax_tile_portable(sp, ta, mp, lp, cp, pf.data());
        if (!bf16 && !portable) cpu::flash::softmax_tile(sp, ta, mp, lp, cp, pf.data());
        for (int64_t r = 0; r < c.rows; ++r) {
          double mx = m0[size_t(r)];
          for (int64_t col = 0; col < c.cols; ++col)
            if (visible(c, r, col)) mx = std::max(mx, score(c, s0, scale, r, col));
          EXPECT_EQ(std::isinf(mx), std::isinf(m[size_t(r)])) << r;
          if (!std::isinf(mx)) expect_near_rel(m[size_t(r)], mx, 1e-6, 1e-6, "m", r, -1);
          const double mref = std::isinf(mx) ? 0.0 : mx;
          const double cw = std::exp(double(m0[size_t(r)]) - mref);
          expect_near_rel(corr[size_t(r)], cw, exp_rel((std::isinf(m0[size_t(r)]) ? 0 : std::abs(m0[size_t(r)])) + std::abs(mref)), 0, "corr", r, -1);
          double sum = 0;
          for (int64_t col = 0; col < kBk; ++col) {
            const double want = visible(c, r, col) ? std::exp(score(c, s0, scale, r, col) - mref) : 0.0;
            sum += want;
            const double got = bf16 ? widen(pb[size_t(r * kBk + col)]) : pf[size_t(r * kBk + col)];
            if (want == 0.0)
              EXPECT_EQ(got, 0.0) << "masked or padding P, row " << r << " col " << col;
            else
              expect_near_rel(got, want, (bf16 ? 1.0 / 256 : 0) + exp_rel(magnitude(c, s0, scale, r, col) + std::abs(mref)),
                              0, "P", r, col);
          }
          expect_near_rel(l[size_t(r)], double(l0[size_t(r)]) * cw + sum, exp_rel(std::abs(mref) + 40), 1e-30, "l", r, -1);
        }
      }
}

TEST(AttentionTile, PAndDsAgainstFloat64) {
  const float scale = 0.125f;
  for (const TileCase& c : cases())
    for (bool portable : {false, true}) {
      SCOPED_TRACE(::testing::Message() << c.name << (portable ? " portable" : " vector"));
      std::vector<int32_t> zeros(kBq, 0);
      TileArgs t{c.rows, c.cols, c.i0, c.j0, scale, c.slope, c.starts.empty() ? zeros.data() : c.starts.data()};
      const auto sd = test::randn(size_t(kBq * kBk), 3.0, 41), dpd = test::randn(size_t(kBq * kBk), 1.0, 42);
      const auto dd = test::randn(kBq, 1.0, 43);
      std::vector<float> s0(sd.begin(), sd.end()), dp0(dpd.begin(), dpd.end());
      const std::vector<float> dvec(dd.begin(), dd.end());
      // What the mask hides or the tile lacks is never read: NaN there (a product may leave the
      // masked triangle of dP uncomputed).
      for (int64_t r = 0; r < kBq; ++r)
        for (int64_t col = 0; col < kBk; ++col)
          if (r >= c.rows || !visible(c, r, col)) s0[size_t(r * kBk + col)] = dp0[size_t(r * kBk + col)] = NAN;
      // lse: each row's log-sum-exp over its visible keys here plus an earlier part.
      std::vector<float> lse(kBq);
      for (int64_t r = 0; r < kBq; ++r) {
        double z = 0.5;
        for (int64_t col = 0; col < c.cols; ++col)
          if (visible(c, r, col)) z += std::exp(score(c, s0, scale, r, col));
        lse[size_t(r)] = float(std::log(z));
      }
      auto rel = [&](int64_t r, int64_t col) {
        return r < c.rows && visible(c, r, col) ? exp_rel(magnitude(c, s0, scale, r, col) + std::abs(lse[size_t(r)])) : 0.0;
      };
      auto p_want = [&](int64_t r, int64_t col) {
        return r < c.rows && visible(c, r, col) ? std::exp(score(c, s0, scale, r, col) - lse[size_t(r)]) : 0.0;
      };
      auto ds_want = [&](int64_t r, int64_t col) {
        return r < c.rows && visible(c, r, col)
                   ? p_want(r, col) * (double(dp0[size_t(r * kBk + col)]) - dvec[size_t(r)]) * scale
                   : 0.0;
      };
      // f32, in place.
      auto s = s0, dp = dp0;
      if (portable)
        cpu::flash::p_ds_tile_portable(s.data(), dp.data(), t, lse.data(), dvec.data());
      else
        cpu::flash::p_ds_tile(s.data(), dp.data(), t, lse.data(), dvec.data());
      for (int64_t r = 0; r < c.rows; ++r)
        for (int64_t col = 0; col < kBk; ++col) {
          expect_near_rel(s[size_t(r * kBk + col)], p_want(r, col), rel(r, col), 1e-30, "P", r, col);
          expect_near_rel(dp[size_t(r * kBk + col)], ds_want(r, col), rel(r, col) + 1e-5, 1e-7, "dS", r, col);
        }
      // bf16: rows and row pairs.
      s = s0, dp = dp0;
      std::vector<Bf16> pp(size_t(kBq * kBk), Bf16{0x4000}), dr(pp), dpp(pp);
      if (portable)
        cpu::flash::p_ds_tile_portable(s.data(), dp.data(), t, lse.data(), dvec.data(), pp.data(), dr.data(), dpp.data());
      else
        cpu::flash::p_ds_tile(s.data(), dp.data(), t, lse.data(), dvec.data(), pp.data(), dr.data(), dpp.data());
      auto check = [&](double got, double want, const char* what, int64_t r, int64_t col) {
        if (want == 0.0)
          EXPECT_EQ(got, 0.0) << what << " masked or padding, row " << r << " col " << col;
        else
          expect_near_rel(got, want, 1.0 / 256 + rel(r, col), 1e-7, what, r, col);
      };
      for (int64_t r = 0; r < (c.rows + 1) / 2 * 2; ++r)
        for (int64_t col = 0; col < kBk; ++col) {
          const size_t pair = size_t(((r / 2) * kBk + col) * 2 + r % 2);
          check(widen(pp[pair]), p_want(r, col), "P pairs", r, col);
          check(widen(dpp[pair]), ds_want(r, col), "dS pairs", r, col);
          if (r < c.rows) check(widen(dr[size_t(r * kBk + col)]), ds_want(r, col), "dS rows", r, col);
        }
    }
}

}  // namespace
}  // namespace cs

namespace cs {
namespace {
// A broken run (a NaN or an overflowing score) must surface as NaN in l and P, in the vector path
// as in its portable twin, so that the trainer's non-finite check skips the step: a clamp that
// turned NaN into exp(-87) once made such a row a finite average of V.
TEST(AttentionTile, NonFiniteScoresComeThroughAsNan) {
  std::vector<int32_t> zeros(kBq, 0);
  const TileArgs t{8, 64, 64, 0, 0.125f, 0.f, zeros.data()};  // off the diagonal: all 64 columns visible
  for (bool portable : {false, true}) {
    SCOPED_TRACE(portable ? "portable" : "vector");
    std::vector<float> s(size_t(kBq * kBk), 0.5f), m(kBq, -INFINITY), l(kBq, 0.f), corr(kBq);
    s[size_t(1 * kBk + 7)] = NAN;       // row 1: one NaN score
    s[size_t(2 * kBk + 9)] = INFINITY;  // row 2: one score overflowed
    std::vector<float> p(size_t(kBq * kBk));
    if (portable)
      cpu::flash::softmax_tile_portable(s.data(), t, m.data(), l.data(), corr.data(), p.data());
    else
      cpu::flash::softmax_tile(s.data(), t, m.data(), l.data(), corr.data(), p.data());
    EXPECT_TRUE(std::isfinite(l[0]));
    EXPECT_TRUE(std::isnan(l[1]));
    EXPECT_TRUE(std::isnan(l[2]));
    EXPECT_TRUE(std::isnan(p[size_t(1 * kBk + 7)]));
    EXPECT_TRUE(std::isnan(p[size_t(2 * kBk + 9)]));
    // The backward: a NaN score or lse gives NaN in P and dS.
    std::vector<float> sb(size_t(kBq * kBk), 0.5f), dp(size_t(kBq * kBk), 0.25f), lse(kBq, 4.f), dvec(kBq, 0.1f);
    sb[size_t(1 * kBk + 3)] = NAN;
    lse[2] = NAN;
    if (portable)
      cpu::flash::p_ds_tile_portable(sb.data(), dp.data(), t, lse.data(), dvec.data());
    else
      cpu::flash::p_ds_tile(sb.data(), dp.data(), t, lse.data(), dvec.data());
    EXPECT_TRUE(std::isfinite(sb[0]) && std::isfinite(dp[0]));
    EXPECT_TRUE(std::isnan(sb[size_t(1 * kBk + 3)]) && std::isnan(dp[size_t(1 * kBk + 3)]));
    EXPECT_TRUE(std::isnan(sb[size_t(2 * kBk + 5)]) && std::isnan(dp[size_t(2 * kBk + 5)]));
  }
}
}  // namespace
}  // namespace cs
