// Packed sequences (Megatron's --reset-attention-mask --reset-position-ids) on every backend this
// build has: attention with segment ids equals, for every sample of the sequence, the float64
// reference attention of that sample alone (forward and backward, with and without ALiBi), at
// lengths inside one tile and across tiles, with a one-token sample, a row block whose first key
// tile lies wholly before some rows' starts, and ids that repeat in separate runs (each run is its
// own sample); RoPE with per-token positions equals RoPE of each sample alone from position 0.
#include <gtest/gtest.h>

#include <numeric>
#include <string>
#include <tuple>

#include "backend/test_util.h"
#include "closeness.h"
#include "ref/ops_ref.h"
#include "tolerances.h"

namespace cs {
namespace {
using test::all_close;
using test::randn;

struct PackCase {
  std::string name;
  int64_t h, t, hd;
  bool alibi;
  std::vector<std::vector<int64_t>> lengths;  // per sequence: its samples' lengths, summing to t
};

// Segment ids of the runs: 7, 3, 7, 3, ... (a repeated id in a later run is still a new sample).
std::vector<int32_t> segment_ids(const PackCase& c) {
  std::vector<int32_t> seg;
  for (const auto& row : c.lengths) {
    EXPECT_EQ(std::accumulate(row.begin(), row.end(), int64_t(0)), c.t) << c.name;
    for (size_t s = 0; s < row.size(); ++s) seg.insert(seg.end(), size_t(row[s]), s % 2 ? 3 : 7);
  }
  return seg;
}

// Rows [s, s + len) of sequence b of x (B, H, T, Hd) as (1, H, len, Hd), and back.
std::vector<double> take(const std::vector<double>& x, const PackCase& c, int64_t b, int64_t s, int64_t len) {
  std::vector<double> out;
  for (int64_t h = 0; h < c.h; ++h) {
    const auto* p = x.data() + ((b * c.h + h) * c.t + s) * c.hd;
    out.insert(out.end(), p, p + len * c.hd);
  }
  return out;
}
void put(std::vector<double>& x, const std::vector<double>& part, const PackCase& c, int64_t b, int64_t s, int64_t len) {
  for (int64_t h = 0; h < c.h; ++h)
    std::copy(part.begin() + h * len * c.hd, part.begin() + (h + 1) * len * c.hd,
              x.begin() + ((b * c.h + h) * c.t + s) * c.hd);
}

class PackedAttention : public ::testing::TestWithParam<std::tuple<std::string, PackCase>> {
 protected:
  test::OnDevice dev{std::get<0>(GetParam())};
  CS_SKIP_WITHOUT_DEVICE()
};

TEST_P(PackedAttention, EachSampleAsIfAlone) {
  const PackCase c = std::get<1>(GetParam());
  const int64_t b = int64_t(c.lengths.size());
  const size_t n = size_t(b * c.h * c.t * c.hd);
  auto q = randn(n, 1.5, 11), k = randn(n, 1.5, 12), v = randn(n, 1, 13), dy = randn(n, 1, 14);
  std::vector<double> sl;
  if (c.alibi) {
    std::vector<float> s(size_t(c.h));
    alibi_slopes(c.h, s.data());
    sl.assign(s.begin(), s.end());
  }
  const Shape s{b, c.h, c.t, c.hd};
  Ctx& ctx = dev.ctx();
  Tensor qt = dev.upload(q, s), kt = dev.upload(k, s), vt = dev.upload(v, s), dyt = dev.upload(dy, s);
  Tensor st = dev.upload(sl, {int64_t(sl.size())}), seg = dev.upload(segment_ids(c), {b, c.t});
  Tensor ot = dev.alloc(s), lt = dev.alloc({b, c.h, c.t}), dqt = dev.alloc(s), dkt = dev.alloc(s), dvt = dev.alloc(s);
  ctx.ops.attention_forward(ctx, qt, kt, vt, st, seg, ot, lt);
  ctx.ops.attention_backward(ctx, qt, kt, vt, st, seg, ot, lt, dyt, dqt, dkt, dvt);

  std::vector<double> wo(n), wq(n), wk(n), wv(n);
  for (int64_t bi = 0; bi < b; ++bi) {
    int64_t start = 0;
    for (const int64_t len : c.lengths[size_t(bi)]) {
      auto qs = take(q, c, bi, start, len), ks = take(k, c, bi, start, len), vs = take(v, c, bi, start, len),
           ds = take(dy, c, bi, start, len);
      put(wo, ref::attention(qs, ks, vs, sl, 1, c.h, len, c.hd), c, bi, start, len);
      std::vector<double> gq, gk, gv;
      ref::attention_backward(qs, ks, vs, sl, ds, 1, c.h, len, c.hd, gq, gk, gv);
      put(wq, gq, c, bi, start, len);
      put(wk, gk, c, bi, start, len);
      put(wv, gv, c, bi, start, len);
      start += len;
    }
  }
  EXPECT_TRUE(all_close(dev.download(ot), wo, tol::kF32Atol, tol::kF32Rtol, "packed o"));
  auto atol = [](const std::vector<double>& g) { return tol::kGradAtolScale * std::max(1.0, test::max_abs(g)); };
  EXPECT_TRUE(all_close(dev.download(dqt), wq, atol(wq), tol::kGradRtol, "packed dq"));
  EXPECT_TRUE(all_close(dev.download(dkt), wk, atol(wk), tol::kGradRtol, "packed dk"));
  EXPECT_TRUE(all_close(dev.download(dvt), wv, atol(wv), tol::kGradRtol, "packed dv"));
}

TEST_P(PackedAttention, RopePositionsRestartAtEachSample) {
  const PackCase c = std::get<1>(GetParam());
  const int64_t b = int64_t(c.lengths.size());
  const size_t n = size_t(b * c.h * c.t * c.hd);
  auto x = randn(n, 1, 21);
  std::vector<int32_t> pos;
  for (const auto& row : c.lengths)
    for (const int64_t len : row)
      for (int64_t i = 0; i < len; ++i) pos.push_back(int32_t(i));
  const Shape s{b, c.h, c.t, c.hd};
  Ctx& ctx = dev.ctx();
  Tensor xt = dev.upload(x, s), pt = dev.upload(pos, {b, c.t});
  ctx.ops.rope_apply(ctx, xt, 10000.f, 0, pt, false);
  std::vector<double> want(n);
  for (int64_t bi = 0; bi < b; ++bi) {
    int64_t start = 0;
    for (const int64_t len : c.lengths[size_t(bi)]) {
      put(want, ref::rope(take(x, c, bi, start, len), c.h, len, c.hd, 10000.0, 0), c, bi, start, len);
      start += len;
    }
  }
  // The angle is position x inverse frequency in fp32, as Hugging Face computes it: at positions
  // near 150 its rounding moves the result by up to ~5e-6 from the float64 reference.
  EXPECT_TRUE(all_close(dev.download(xt), want, 2e-5, tol::kF32Rtol, "packed rope"));
  ctx.ops.rope_apply(ctx, xt, 10000.f, 0, pt, true);  // the inverse rotation gives x back
  EXPECT_TRUE(all_close(dev.download(xt), x, 1e-5, 1e-5, "packed rope inverse"));
}

INSTANTIATE_TEST_SUITE_P(
    Samples, PackedAttention,
    ::testing::Combine(::testing::ValuesIn(test::test_backends()),
                       ::testing::Values(PackCase{"t17_nobias", 3, 17, 8, false, {{5, 12}, {17}}},
                                         PackCase{"t17_alibi", 3, 17, 8, true, {{1, 4, 12}, {9, 8}}},
                                         // rows 71..127 meet key tile 0..63 wholly before their start
                                         PackCase{"t150_alibi", 2, 150, 8, true, {{71, 79}, {1, 30, 64, 55}}},
                                         PackCase{"t150_nobias", 2, 150, 16, false, {{64, 64, 22}, {3, 147}}})),
    [](const ::testing::TestParamInfo<std::tuple<std::string, PackCase>>& info) {
      return std::get<0>(info.param) + "_" + std::get<1>(info.param).name;
    });

}  // namespace
}  // namespace cs
