// Attention: the flash kernel against the float64 reference (forward) and complex-step
// derivatives (backward), with and without ALiBi, at sizes inside one block (T = 17) and across
// block boundaries (T = 130); and the flash kernel against the naive one it replaces.
#include <gtest/gtest.h>

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

class Attention : public ::testing::TestWithParam<Case> {};

std::vector<double> slopes_for(const Case& c) {
  if (!c.alibi) return {};
  std::vector<float> s(size_t(c.h));
  alibi_slopes(c.h, s.data());
  return {s.begin(), s.end()};
}

TEST_P(Attention, FlashMatchesReferenceAndDerivatives) {
  const Case c = GetParam();
  const size_t n = size_t(c.b * c.h * c.t * c.hd);
  auto q = randn(n, c.scale, 1), k = randn(n, c.scale, 2), v = randn(n, 1, 3), dy = randn(n, 1, 4);
  auto qf = to_f32(q), kf = to_f32(k), vf = to_f32(v), dyf = to_f32(dy);
  auto sl = slopes_for(c);
  std::vector<float> slf(sl.begin(), sl.end()), o(n), lse(size_t(c.b * c.h * c.t)), dq(n), dk(n), dv(n);
  const Shape s{c.b, c.h, c.t, c.hd};
  Tensor qt(qf.data(), s), kt(kf.data(), s), vt(vf.data(), s), ot(o.data(), s), dyt(dyf.data(), s);
  Tensor lt(lse.data(), {c.b, c.h, c.t}), st(slf.data(), {int64_t(slf.size())});
  Tensor dqt(dq.data(), s), dkt(dk.data(), s), dvt(dv.data(), s);
  cpu_ops().attention_forward(qt, kt, vt, st, ot, lt);
  auto want = ref::attention(q, k, v, sl, c.b, c.h, c.t, c.hd);
  EXPECT_TRUE(all_close(o, want, tol::kF32Atol, tol::kF32Rtol, "flash o"));
  cpu_ops().attention_backward(qt, kt, vt, st, ot, lt, dyt, dqt, dkt, dvt);

  if (c.t <= 32) {  // complex step: one reference forward per input element
    std::vector<cd> qc(q.begin(), q.end()), kc(k.begin(), k.end()), vc(v.begin(), v.end());
    auto f = [&](int which) {
      return [&, which](const std::vector<cd>& x) {
        return ref::attention(which == 0 ? x : qc, which == 1 ? x : kc, which == 2 ? x : vc, sl,
                              c.b, c.h, c.t, c.hd);
      };
    };
    auto gq = ref::vjp_complex_step(f(0), q, dy), gk = ref::vjp_complex_step(f(1), k, dy),
         gv = ref::vjp_complex_step(f(2), v, dy);
    auto atol = [](const std::vector<double>& g) { return tol::kGradAtolScale * std::max(1.0, test::max_abs(g)); };
    EXPECT_TRUE(all_close(dq, gq, atol(gq), tol::kGradRtol, "flash dq"));
    EXPECT_TRUE(all_close(dk, gk, atol(gk), tol::kGradRtol, "flash dk"));
    EXPECT_TRUE(all_close(dv, gv, atol(gv), tol::kGradRtol, "flash dv"));
  }

  // The naive kernel (materialised scores) must agree with the flash one.
  std::vector<float> o2(n), lse2(lse.size()), dq2(n), dk2(n), dv2(n);
  Tensor o2t(o2.data(), s), l2t(lse2.data(), {c.b, c.h, c.t});
  Tensor dq2t(dq2.data(), s), dk2t(dk2.data(), s), dv2t(dv2.data(), s);
  cpu::attention_naive_forward(qt, kt, vt, st, o2t, l2t);
  cpu::attention_naive_backward(qt, kt, vt, st, o2t, l2t, dyt, dq2t, dk2t, dv2t);
  EXPECT_TRUE(all_close(o, o2, 1e-5, 1e-4, "naive o"));
  EXPECT_TRUE(all_close(lse, lse2, 1e-5, 1e-5, "naive lse"));
  for (auto* p : {&dq, &dk, &dv}) {
    const auto& other = p == &dq ? dq2 : p == &dk ? dk2 : dv2;
    EXPECT_TRUE(all_close(*p, other, 1e-5 * std::max(1.0, test::max_abs(other)), 1e-3, "naive grads"));
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, Attention,
    ::testing::Values(Case{2, 3, 17, 8, false, 1.0}, Case{2, 3, 17, 8, true, 1.0},
                      Case{1, 3, 17, 8, true, 4.0}, Case{1, 5, 9, 4, true, 0.25},
                      Case{1, 3, 130, 16, false, 1.0}, Case{2, 3, 130, 16, true, 2.0}));

}  // namespace
}  // namespace cs
