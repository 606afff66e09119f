// The GPU's one-block-per-row kernels (src/backend/cuda/row_kernels.cuh: the cross entropy's
// one-pass log-sum-exp and its gradient, RMSNorm forward, dx and dw's partial sums), their own
// text, run on the CPU under the emulation in both widths the host picks (4 columns a thread and
// 1) against float64 references: rows longer than a block's stride, a large logit first and
// last (the running maximum's rescaling both ways), an ignored target and one outside the shard,
// the gradient in place over f32 logits, dx accumulated.
#include <gtest/gtest.h>

#include "cuda_emu/launch.h"
#include "backend/cuda/elementwise_kernels.cuh"
#include "backend/cuda/row_kernels.cuh"

namespace {
namespace pr = cs::cuda::per_row;

std::vector<float> randn(size_t n, uint32_t seed, float sd = 1.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

// The largest |got - want| / (|want| + floor) over a vector.
template <typename T>
double worst(const std::vector<T>& got, const std::vector<double>& want, double floor = 1.0) {
  EXPECT_EQ(got.size(), want.size());
  double w = 0;
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
    const double d = std::abs(double(ld(&got[i])) - want[i]) / (std::abs(want[i]) + floor);
    w = std::isnan(d) ? INFINITY : std::max(w, d);
  }
  return w;
}

// The largest rounding of a storage dtype relative to its binade: half a unit in the last place
// of bf16 (8 significant bits) or f16 (11); for f32 the formula's own error bound, given.
template <typename T>
double rounding(double f32_bound) {
  return std::is_same_v<T, bf16> ? 1.0 / 256 : std::is_same_v<T, f16> ? 1.0 / 2048 : f32_bound;
}

template <int N, typename D>
void cross_entropy_case(int64_t n, int64_t v, int64_t off) {
  auto z = randn(size_t(n * v), 11, 3.f);
  z[0] = 40.f;                     // row 0: its maximum first
  z[size_t(2 * v - 1)] = 35.f;     // row 1: its maximum last
  std::vector<int32_t> tg(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) tg[size_t(i)] = int32_t((i * 37) % (v + 10));  // some past the shard
  tg[size_t(n - 1)] = -1;                                                       // ignored
  for (auto& t : tg) t = t < 0 ? t : t + int32_t(off) - 5;                       // some before the shard
  std::vector<float> lse(static_cast<size_t>(n)), tl(static_cast<size_t>(n));
  emu::launch(unsigned(n), 1, 64, 0, [&] { pr::ce_forward<N>(z.data(), tg.data(), v, off, lse.data(), tl.data()); });
  std::vector<double> want_lse(static_cast<size_t>(n)), want_tl(static_cast<size_t>(n));
  const float scale = 0.25f;
  std::vector<double> want_dz(static_cast<size_t>(n * v));
  for (int64_t i = 0; i < n; ++i) {
    double mx = -INFINITY, s = 0;
    for (int64_t j = 0; j < v; ++j) mx = std::max(mx, double(z[size_t(i * v + j)]));
    for (int64_t j = 0; j < v; ++j) s += std::exp(double(z[size_t(i * v + j)]) - mx);
    want_lse[size_t(i)] = mx + std::log(s);
    const int64_t col = int64_t(tg[size_t(i)]) - off;
    const bool here = tg[size_t(i)] >= 0 && col >= 0 && col < v;
    want_tl[size_t(i)] = here ? z[size_t(i * v + col)] : 0.0;
    for (int64_t j = 0; j < v; ++j)
      want_dz[size_t(i * v + j)] =
          tg[size_t(i)] < 0 ? 0.0 : scale * (std::exp(double(z[size_t(i * v + j)]) - want_lse[size_t(i)]) - (j == col));
  }
  EXPECT_LT(worst(lse, want_lse), 2e-6) << "lse, width " << N;
  EXPECT_EQ(worst(tl, want_tl, 1e-30), 0.0) << "target logit, width " << N;
  // The gradient: into its own buffer (D), and in place over the f32 logits from row 1 on (r0 = 1).
  std::vector<D> dz(static_cast<size_t>(n * v));
  emu::launch(unsigned(n), 1, 64, 0, [&] { pr::ce_backward<N, D>(z.data(), lse.data(), tg.data(), v, off, scale, 0, dz.data()); });
  EXPECT_LT(worst(dz, want_dz), rounding<D>(2e-6)) << "gradient, width " << N;
  emu::launch(unsigned(n - 1), 1, 64, 0,
              [&] { pr::ce_backward<N, float>(z.data(), lse.data(), tg.data(), v, off, scale, 1, z.data() + v); });
  std::vector<float> in_place(z.begin() + v, z.end());
  std::vector<double> want_rest(want_dz.begin() + v, want_dz.end());
  EXPECT_LT(worst(in_place, want_rest), 2e-6) << "gradient in place, width " << N;
}

TEST(RowKernelsEmulated, CrossEntropyBothWidths) {
  cross_entropy_case<4, float>(5, 4 * 64 * 3, 100);  // three block strides a row
  cross_entropy_case<4, bf16>(4, 36, 0);
  cross_entropy_case<1, f16>(3, 70, 7);
  cross_entropy_case<1, float>(4, 131, 0);
}

// A half gradient written exactly over the f32 logits, as cross_entropy.cu schedules it: rows
// [0, 2) through f32 staging and a cast, then half_in_place_chunks' chunks, each chunk's blocks
// one at a time in reverse order (on the GPU they run in any order, at once): the bits of the
// same kernel writing to a buffer of its own.
template <int N, typename D>
void in_place_case(int64_t n, int64_t v) {
  const auto z = randn(size_t(n * v), 31, 3.f);
  std::vector<int32_t> tg(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) tg[size_t(i)] = i % 5 == 3 ? -1 : int32_t((i * 13) % v);
  std::vector<float> lse(static_cast<size_t>(n)), tl(static_cast<size_t>(n));
  emu::launch(unsigned(n), 1, 64, 0, [&] { pr::ce_forward<N>(z.data(), tg.data(), v, 0, lse.data(), tl.data()); });
  const float scale = 0.5f;
  std::vector<D> want(static_cast<size_t>(n * v));
  emu::launch(unsigned(n), 1, 64, 0, [&] { pr::ce_backward<N, D>(z.data(), lse.data(), tg.data(), v, 0, scale, 0, want.data()); });
  std::vector<float> buf = z;  // the logits, then their gradient over them
  D* half = reinterpret_cast<D*>(buf.data());
  const int64_t n1 = std::min<int64_t>(n, 2);
  std::vector<float> staging(size_t(n1 * v));
  emu::launch(unsigned(n1), 1, 64, 0, [&] { pr::ce_backward<N, float>(buf.data(), lse.data(), tg.data(), v, 0, scale, 0, staging.data()); });
  emu::launch(1, 1, 64, 0, [&] { cs::cuda::ew::cast<8, float, D>(staging.data(), half, n1 * v); });
  int64_t chunks = 0;
  pr::half_in_place_chunks(n, [&](int64_t r0, int64_t r1) {
    ++chunks;
    for (int64_t i = r1 - 1; i >= r0; --i)  // block i alone: row i
      emu::launch(1, 1, 64, 0, [&] { pr::ce_backward<N, D>(buf.data(), lse.data(), tg.data(), v, 0, scale, i, half + i * v); });
  });
  EXPECT_EQ(chunks, n > 2 ? int64_t(std::ceil(std::log2(double(n)))) - 1 : 0) << n << " rows";
  size_t differ = 0;
  for (size_t i = 0; i < want.size(); ++i) differ += std::memcmp(&want[i], half + i, sizeof(D)) != 0;
  EXPECT_EQ(differ, 0u) << "of " << want.size() << " in-place gradient elements, width " << N << ", " << n << " rows";
}

TEST(RowKernelsEmulated, HalfGradientOverTheLogitsThemselves) {
  for (const int64_t n : {1, 2, 3, 4, 5, 9, 16, 17}) {
    in_place_case<4, bf16>(n, 40);
    in_place_case<1, f16>(n, 21);
  }
}

// Non-finite logits as the two-pass form and the CPU treat them: -inf adds nothing to the sum (also
// as every thread's first value, before any finite one), a NaN makes lse NaN even when it is a
// thread's only value (a shard of no more columns than the block's threads hold at once).
template <int N>
void non_finite_case(int64_t v, int64_t nan_col) {
  const int64_t n = 3;
  auto z = randn(size_t(n * v), 41);
  for (int64_t k = 0; k < 64 * N && k + N < v; k += N) z[size_t(k)] = -INFINITY;  // each thread's first value but the last
  for (int64_t j = 0; j < v; ++j) z[size_t(v + j)] = -INFINITY;  // row 1: every logit -inf but the last
  z[size_t(2 * v - 1)] = 0.5f;
  z[size_t(2 * v + nan_col)] = NAN;  // row 2: one NaN
  std::vector<int32_t> tg = {1, 2, 3};
  std::vector<float> lse(3), tl(3);
  emu::launch(3, 1, 64, 0, [&] { pr::ce_forward<N>(z.data(), tg.data(), v, 0, lse.data(), tl.data()); });
  double mx = -INFINITY, s = 0;
  for (int64_t j = 0; j < v; ++j) mx = std::max(mx, double(z[size_t(j)]));
  for (int64_t j = 0; j < v; ++j) s += std::exp(double(z[size_t(j)]) - mx);
  EXPECT_NEAR(lse[0], mx + std::log(s), 2e-6 * (1 + std::abs(mx))) << "-inf first in every thread, width " << N;
  EXPECT_NEAR(lse[1], 0.5f, 1e-7) << "one finite logit among -inf, width " << N;
  EXPECT_TRUE(std::isnan(lse[2])) << "a NaN logit, width " << N << ": lse " << lse[2];
}

TEST(RowKernelsEmulated, CrossEntropyNonFiniteLogits) {
  non_finite_case<4>(4 * 64 * 2, 5);  // two strides of 64 threads x 4
  non_finite_case<4>(64, 37);         // 16 chunks: a NaN in the only chunk its thread reads
  non_finite_case<1>(64, 63);         // 64 columns over 64 threads: a thread's only value
  non_finite_case<1>(150, 0);
}

template <int N, typename W>
void rmsnorm_case(int64_t n, int64_t d, bool accumulate) {
  const float eps = 1e-5f;
  const auto x = randn(size_t(n * d), 21), dy = randn(size_t(n * d), 22), wf = randn(size_t(d), 23);
  std::vector<W> w(static_cast<size_t>(d));
  for (size_t j = 0; j < w.size(); ++j) st(&w[j], wf[j]);
  std::vector<W> y(static_cast<size_t>(n * d));
  std::vector<float> rstd(static_cast<size_t>(n)), dx = randn(size_t(n * d), 24), dx0 = dx;
  emu::launch(unsigned(n), 1, 64, 0, [&] { pr::rmsnorm_forward<N, W, W>(x.data(), w.data(), eps, y.data(), rstd.data(), d); });
  emu::launch(unsigned(n), 1, 64, 0,
              [&] { pr::rmsnorm_dx<N, W>(x.data(), w.data(), rstd.data(), dy.data(), dx.data(), d, accumulate); });
  // dw's partials over chunks of 3 rows, two blocks of 32 threads on the columns.
  const int64_t rows = 3, chunks = (n + rows - 1) / rows;
  std::vector<float> partial(size_t(chunks * d), NAN);
  emu::launch(unsigned((d / N + 31) / 32), unsigned(chunks), 32, 0,
              [&] { pr::rmsnorm_dw_partial<N>(x.data(), rstd.data(), dy.data(), n, d, rows, partial.data()); });
  std::vector<double> want_y(static_cast<size_t>(n * d)), want_rstd(static_cast<size_t>(n));
  std::vector<double> want_dx(static_cast<size_t>(n * d)), want_p(static_cast<size_t>(chunks * d));
  for (int64_t i = 0; i < n; ++i) {
    double ss = 0, dot = 0;
    for (int64_t j = 0; j < d; ++j) ss += double(x[size_t(i * d + j)]) * x[size_t(i * d + j)];
    const double r = 1.0 / std::sqrt(ss / double(d) + eps);
    want_rstd[size_t(i)] = r;
    for (int64_t j = 0; j < d; ++j) {
      const size_t k = size_t(i * d + j);
      want_y[k] = double(ld(&w[size_t(j)])) * x[k] * r;
      dot += double(ld(&w[size_t(j)])) * dy[k] * x[k];
    }
    for (int64_t j = 0; j < d; ++j) {
      const size_t k = size_t(i * d + j);
      want_dx[k] = r * ld(&w[size_t(j)]) * dy[k] - x[k] * r * r * r * dot / double(d) + (accumulate ? dx0[k] : 0.0);
      want_p[size_t((i / rows) * d + j)] += double(dy[k]) * x[k] * r;
    }
  }
  const double tol = rounding<W>(2e-6);
  EXPECT_LT(worst(rstd, want_rstd), 1e-6) << "rstd, width " << N;
  EXPECT_LT(worst(y, want_y), tol) << "y, width " << N;
  EXPECT_LT(worst(dx, want_dx), 2e-6) << "dx, width " << N << (accumulate ? ", accumulated" : "");
  EXPECT_LT(worst(partial, want_p), 2e-6) << "dw partials, width " << N;
}

TEST(RowKernelsEmulated, RmsnormBothWidths) {
  rmsnorm_case<4, float>(7, 4 * 64 * 2 + 8, false);  // two block strides and part of a third
  rmsnorm_case<4, bf16>(4, 32, true);
  rmsnorm_case<1, f16>(5, 45, true);
  rmsnorm_case<1, float>(3, 300, false);
}

}  // namespace
