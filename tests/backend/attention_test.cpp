// Attention on every backend this build has: the flash kernel against the float64 reference
// (forward) and complex-step derivatives (backward), with and without ALiBi, at sizes inside one
// block (T = 17) and across block boundaries (T = 130); and against the naive kernel it replaces
// (cpu::attention_naive_*, run on the CPU backend over the same host inputs).
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <tuple>

#include "backend/cpu/ops.h"
#include "backend/test_util.h"
#include "closeness.h"
#include "ref/ops_ref.h"
#include "tolerances.h"

namespace cs {
namespace {
using ref::cd;
using test::all_close;
using test::randn;
using test::to_f32;

struct Case {
  int64_t b, h, t, hd;
  bool alibi;
  double scale;
};

// "b2_h3_t17_hd8_alibi_x1".
std::string case_name(const Case& c) {
  std::ostringstream os;
  os << "b" << c.b << "_h" << c.h << "_t" << c.t << "_hd" << c.hd
     << (c.alibi ? "_alibi_" : "_nobias_") << test::scale_name(c.scale);
  return os.str();
}

// gtest prints a failing case's parameter with this.
void PrintTo(const Case& c, std::ostream* os) { *os << case_name(c); }

class Attention : public ::testing::TestWithParam<std::tuple<std::string, Case>> {
 protected:
  test::OnDevice dev{std::get<0>(GetParam())};
  CS_SKIP_WITHOUT_DEVICE()
};

std::vector<double> slopes_for(const Case& c) {
  if (!c.alibi) return {};
  std::vector<float> s(size_t(c.h));
  alibi_slopes(c.h, s.data());
  return {s.begin(), s.end()};
}

TEST_P(Attention, FlashMatchesReferenceAndDerivatives) {
  const Case c = std::get<1>(GetParam());
  const size_t n = size_t(c.b * c.h * c.t * c.hd);
  auto q = randn(n, c.scale, 1), k = randn(n, c.scale, 2), v = randn(n, 1, 3), dy = randn(n, 1, 4);
  auto sl = slopes_for(c);
  const Shape s{c.b, c.h, c.t, c.hd};
  Tensor qt = dev.upload(q, s), kt = dev.upload(k, s), vt = dev.upload(v, s),
         dyt = dev.upload(dy, s);
  Tensor st = dev.upload(sl, {int64_t(sl.size())}), ot = dev.alloc(s),
         lt = dev.alloc({c.b, c.h, c.t});
  Tensor dqt = dev.alloc(s), dkt = dev.alloc(s), dvt = dev.alloc(s);
  Ctx& ctx = dev.ctx();
  ctx.ops.attention_forward(ctx, qt, kt, vt, st, Tensor(nullptr, {0}), ot, lt);
  const std::vector<float> o = dev.download(ot), lse = dev.download(lt);
  auto want = ref::attention(q, k, v, sl, c.b, c.h, c.t, c.hd);
  // o averages v: its rounding error scales with v's largest value, not with o's own (a small o is
  // a cancelling sum of p v terms, summed in another order than the reference's).
  EXPECT_TRUE(all_close(o, want, tol::kF32Atol * std::max(1.0, test::max_abs(v)), tol::kF32Rtol, "flash o"));
  ctx.ops.attention_backward(ctx, qt, kt, vt, st, Tensor(nullptr, {0}), ot, lt, dyt, dqt, dkt, dvt);
  const std::vector<float> dq = dev.download(dqt), dk = dev.download(dkt), dv = dev.download(dvt);

  // The float64 reference backward, at every length (block-crossing ones included: the kernel's
  // query blocks are 32 rows, its key blocks 64); the reference itself checked against
  // complex-step derivatives where that is affordable (one reference forward per input element).
  std::vector<double> rq, rk, rv;
  ref::attention_backward(q, k, v, sl, dy, c.b, c.h, c.t, c.hd, rq, rk, rv);
  auto atol = [](const std::vector<double>& g) { return tol::kGradAtolScale * std::max(1.0, test::max_abs(g)); };
  EXPECT_TRUE(all_close(dq, rq, atol(rq), tol::kGradRtol, "flash dq"));
  EXPECT_TRUE(all_close(dk, rk, atol(rk), tol::kGradRtol, "flash dk"));
  EXPECT_TRUE(all_close(dv, rv, atol(rv), tol::kGradRtol, "flash dv"));
  if (c.t <= 32) {
    std::vector<cd> qc(q.begin(), q.end()), kc(k.begin(), k.end()), vc(v.begin(), v.end());
    auto f = [&](int which) {
      return [&, which](const std::vector<cd>& x) {
        return ref::attention(which == 0 ? x : qc, which == 1 ? x : kc, which == 2 ? x : vc, sl,
                              c.b, c.h, c.t, c.hd);
      };
    };
    auto gq = ref::vjp_complex_step(f(0), q, dy), gk = ref::vjp_complex_step(f(1), k, dy),
         gv = ref::vjp_complex_step(f(2), v, dy);
    // The written-out VJP equals the exact derivatives to double rounding.
    EXPECT_TRUE(all_close(rq, gq, 1e-10, 1e-8, "reference dq"));
    EXPECT_TRUE(all_close(rk, gk, 1e-10, 1e-8, "reference dk"));
    EXPECT_TRUE(all_close(rv, gv, 1e-10, 1e-8, "reference dv"));
  }

  // The naive kernel (materialised scores, on the CPU over the same inputs) must agree.
  auto qf = to_f32(q), kf = to_f32(k), vf = to_f32(v), dyf = to_f32(dy);
  std::vector<float> slf(sl.begin(), sl.end()), o2(n), lse2(lse.size()), dq2(n), dk2(n), dv2(n);
  Tensor qh(qf.data(), s), kh(kf.data(), s), vh(vf.data(), s), dyh(dyf.data(), s);
  Tensor sh(slf.data(), {int64_t(slf.size())}), o2t(o2.data(), s),
      l2t(lse2.data(), {c.b, c.h, c.t});
  Tensor dq2t(dq2.data(), s), dk2t(dk2.data(), s), dv2t(dv2.data(), s);
  auto cpu = cpu_backend().make_context();
  cpu::attention_naive_forward(*cpu, qh, kh, vh, sh, o2t, l2t);
  cpu::attention_naive_backward(*cpu, qh, kh, vh, sh, o2t, l2t, dyh, dq2t, dk2t, dv2t);
  EXPECT_TRUE(all_close(o, o2, 1e-5, 1e-4, "naive o"));
  EXPECT_TRUE(all_close(lse, lse2, 1e-5, 1e-5, "naive lse"));
  EXPECT_TRUE(all_close(dq2, rq, atol(rq), tol::kGradRtol, "naive dq"));
  EXPECT_TRUE(all_close(dk2, rk, atol(rk), tol::kGradRtol, "naive dk"));
  EXPECT_TRUE(all_close(dv2, rv, atol(rv), tol::kGradRtol, "naive dv"));
}

INSTANTIATE_TEST_SUITE_P(Shapes, Attention,
                         ::testing::Combine(::testing::ValuesIn(test::test_backends()),
                                            ::testing::Values(Case{2, 3, 17, 8, false, 1.0},
                                                              Case{2, 3, 17, 8, true, 1.0},
                                                              Case{1, 3, 17, 8, true, 4.0},
                                                              Case{1, 5, 9, 4, true, 0.25},
                                                              Case{1, 2, 40, 8, true, 1.0},
                                                              Case{1, 2, 70, 8, false, 0.5},
                                                              Case{1, 3, 130, 16, false, 1.0},
                                                              Case{2, 3, 130, 16, true, 2.0})),
                         [](const ::testing::TestParamInfo<std::tuple<std::string, Case>>& info) {
                           return std::get<0>(info.param) + "_" +
                                  case_name(std::get<1>(info.param));
                         });

}  // namespace
}  // namespace cs
