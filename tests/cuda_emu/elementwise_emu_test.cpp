// The GPU's element-wise kernels (src/backend/cuda/elementwise_kernels.cuh: SwiGLU, casts, the
// head split and merge, RoPE, add, scale, AdamW; reduce_kernels.cuh's first pass of the sums),
// their own text, run on the CPU under the emulation, in both widths the host picks (8 or 4
// elements a thread through vec.cuh's 16-byte accesses, and 1): each must give the bits of the
// element's scalar formula (written out here) at every index, with fewer blocks than rows or
// chunks (the grid-stride loops), a tail past the last full chunk, and dgu over gu (SwiGLU's
// backward in place). This tree builds with -ffp-contract=off, so the formula here and the
// kernel's round alike.
#include <gtest/gtest.h>

#include "cuda_emu/launch.h"
#include "backend/cuda/elementwise_kernels.cuh"
#include "backend/cuda/reduce_kernels.cuh"

namespace {
namespace ew = cs::cuda::ew;

template <typename T>
std::vector<T> randn(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.5f);
  std::vector<T> v(n);
  for (auto& x : v) st(&x, nd(rng));
  return v;
}

// The number of elements whose bits differ.
template <typename T>
size_t differ(const std::vector<T>& a, const std::vector<T>& b) {
  EXPECT_EQ(a.size(), b.size());
  size_t d = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) d += std::memcmp(&a[i], &b[i], sizeof(T)) != 0;
  return d;
}

// Both widths of a row kernel over (n rows, f columns): a grid of gx x gy blocks of 64 threads.
template <int N>
void rows(int64_t n, int64_t f, const std::function<void()>& fn) {
  const int64_t chunks = f / N;
  emu::launch(unsigned(std::max<int64_t>(1, std::min<int64_t>(2, chunks / 64))), unsigned(std::min<int64_t>(n, 3)),
              64, 0, fn);
}

template <int N, typename G, typename O>
void swiglu_case(int64_t n, int64_t f) {
  const auto gu = randn<G>(size_t(2 * n * f), 1);
  const auto dout = randn<float>(size_t(n * f), 2);
  std::vector<O> out(size_t(n * f)), want(size_t(n * f));
  std::vector<G> dgu = gu, want_dgu(gu.size());  // dgu over a copy of gu: in place
  rows<N>(n, f, [&] { ew::swiglu_fwd<N, G, O>(gu.data(), out.data(), n, f); });
  rows<N>(n, f, [&] { ew::swiglu_bwd<N, G, G>(dgu.data(), dout.data(), dgu.data(), n, f); });
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < f; ++j) {
      const float g = ld(&gu[size_t(i * 2 * f + j)]), u = ld(&gu[size_t(i * 2 * f + f + j)]), d = dout[size_t(i * f + j)];
      st(&want[size_t(i * f + j)], g / (1.f + expf(-g)) * u);
      const float s = 1.f / (1.f + expf(-g));
      st(&want_dgu[size_t(i * 2 * f + j)], d * u * s * (1.f + g * (1.f - s)));
      st(&want_dgu[size_t(i * 2 * f + f + j)], d * g * s);
    }
  EXPECT_EQ(differ(out, want), 0u) << "swiglu forward, width " << N << ", " << n << " x " << f;
  EXPECT_EQ(differ(dgu, want_dgu), 0u) << "swiglu backward, width " << N << ", " << n << " x " << f;
}

TEST(ElementwiseEmulated, SwigluBothWidths) {
  swiglu_case<8, bf16, bf16>(5, 24);
  swiglu_case<8, float, bf16>(4, 8 * 64 * 3);  // three chunk strides of two blocks of 64 threads
  swiglu_case<8, f16, f16>(7, 16);
  swiglu_case<1, bf16, float>(5, 13);
  swiglu_case<1, float, float>(2, 130);
}

template <int N, typename X, typename Y>
void cast_case(int64_t n) {
  const auto x = randn<X>(size_t(n), 3);
  std::vector<Y> y(static_cast<size_t>(n)), want(static_cast<size_t>(n));
  emu::launch(2, 1, 64, 0, [&] { ew::cast<N, X, Y>(x.data(), y.data(), n); });
  for (size_t i = 0; i < size_t(n); ++i) st(&want[i], ld(&x[i]));
  EXPECT_EQ(differ(y, want), 0u) << "cast, width " << N << ", " << n << " elements";
}

TEST(ElementwiseEmulated, CastBothWidthsAndTails) {
  cast_case<8, float, bf16>(8 * 128 * 2 + 5);  // two grid strides and a tail of 5
  cast_case<8, bf16, float>(7);                // the tail alone
  cast_case<8, float, f16>(64);
  cast_case<1, f16, float>(300);
}

template <int N, bool kSplit, typename TokT, typename HeadT>
void permute_case(int64_t b, int64_t t, int64_t h, int64_t hd, int64_t c, int64_t col0) {
  auto tok = randn<TokT>(size_t(b * t * c), 4);
  auto head = randn<HeadT>(size_t(b * h * t * hd), 5);
  auto want_tok = tok;
  auto want_head = head;
  for (int64_t bi = 0; bi < b; ++bi)
    for (int64_t hi = 0; hi < h; ++hi)
      for (int64_t ti = 0; ti < t; ++ti)
        for (int64_t i = 0; i < hd; ++i) {
          const size_t tk = size_t((bi * t + ti) * c + col0 + hi * hd + i), hk = size_t(((bi * h + hi) * t + ti) * hd + i);
          if (kSplit) st(&want_head[hk], ld(&tok[tk]));
          else st(&want_tok[tk], ld(&head[hk]));
        }
  rows<N>(b * t, h * hd, [&] { ew::permute<N, kSplit, TokT, HeadT>(tok.data(), head.data(), b * t, h, t, hd, c, col0); });
  EXPECT_EQ(differ(tok, want_tok), 0u) << (kSplit ? "split" : "merge") << ", width " << N;
  EXPECT_EQ(differ(head, want_head), 0u) << (kSplit ? "split" : "merge") << ", width " << N;
}

TEST(ElementwiseEmulated, HeadSplitAndMergeBothWidths) {
  // The q columns of a fused qkv row (col0 0), then the v columns (col0 2C), 2 x 5 tokens.
  permute_case<8, true, bf16, bf16>(2, 5, 3, 16, 3 * 48, 0);
  permute_case<8, true, bf16, bf16>(2, 5, 3, 16, 3 * 48, 96);
  permute_case<8, false, float, bf16>(2, 5, 8, 128, 1024, 0);  // 128 chunks a row: two blocks
  permute_case<8, true, float, f16>(1, 4, 2, 8, 24, 8);
  permute_case<1, true, bf16, float>(2, 3, 3, 6, 20, 1);
  permute_case<1, false, f16, f16>(1, 7, 2, 5, 10, 0);
}

// RoPE through the table, against the angle of every element formed on its own (the earlier
// per-element text, cpu/rope.cpp's angles): positions by t, or each (b, t) its own; the inverse.
template <int N, typename T>
void rope_case(int64_t b, int64_t h, int64_t t, int64_t hd, int64_t pos0, bool packed, bool inverse) {
  auto x = randn<T>(size_t(b * h * t * hd), 10);
  std::vector<int32_t> positions;
  for (int64_t i = 0; i < b * t; ++i) positions.push_back(int32_t((i * 7 + i / t * 2) % t));  // samples differ
  const int32_t* pos = packed ? positions.data() : nullptr;
  auto want = x;
  const int64_t half = hd / 2, rows = b * h * t;
  const float base = 10000.f, sign = inverse ? -1.f : 1.f;
  for (int64_t row = 0; row < rows; ++row)
    for (int64_t i = 0; i < half; ++i) {
      const int64_t ti = row % t, bi = row / t / h, p = pos ? pos[bi * t + ti] : ti;
      const float inv_freq = float(1.0 / std::pow(double(base), double(2 * i) / double(hd)));
      const float angle = float(pos0 + p) * inv_freq;
      const float cs = float(std::cos(double(angle))), sn = sign * float(std::sin(double(angle)));
      T* r = want.data() + row * hd;
      const float x1 = ld(r + i), x2 = ld(r + half + i);
      st(r + i, x1 * cs - x2 * sn);
      st(r + half + i, x2 * cs + x1 * sn);
    }
  const int64_t table_rows = packed ? b * t : t;
  std::vector<float> cos_t(size_t(table_rows * half), NAN), sin_t(size_t(table_rows * half), NAN);
  emu::launch(2, 1, 64, 0, [&] { ew::rope_table(table_rows, half, base, pos0, pos, cos_t.data(), sin_t.data()); });
  emu::launch(3, 1, 32, 0, [&] {
    ew::rope_rotate<N, T>(x.data(), rows, h, t, half, cos_t.data(), sin_t.data(), packed, sign);
  });
  EXPECT_EQ(differ(x, want), 0u) << "rope, width " << N << (packed ? ", packed" : "") << (inverse ? ", inverse" : "");
}

TEST(ElementwiseEmulated, RopeThroughTheTableBothWidths) {
  rope_case<4, bf16>(2, 3, 5, 128, 0, false, false);
  rope_case<4, bf16>(2, 3, 5, 128, 0, true, true);
  rope_case<4, float>(1, 2, 9, 16, 7, false, true);
  rope_case<1, f16>(2, 2, 6, 12, 0, true, false);
  rope_case<1, float>(1, 3, 4, 6, 3, false, false);
}

template <int N, typename H>
void adamw_case(int64_t n, bool with_half) {
  auto p = randn<float>(size_t(n), 6), g = randn<float>(size_t(n), 7), m = randn<float>(size_t(n), 8),
       v = randn<float>(size_t(n), 9);
  for (auto& x : v) x = x * x;
  std::vector<H> half(static_cast<size_t>(n)), want_half(static_cast<size_t>(n));
  const ew::AdamScalars s{1e-3f / 0.1f, 0.05f, 1.f - 1e-4f, 0.9f, 0.95f, 0.1f, 0.05f, 1e-8f, 0.5f};
  auto wp = p, wm = m, wv = v;
  for (size_t i = 0; i < size_t(n); ++i) {
    const float gi = g[i] * s.grad_scale;
    wm[i] = wm[i] * s.b1 + gi * s.omb1;
    wv[i] = wv[i] * s.b2 + s.omb2 * gi * gi;
    const float denom = sqrtf(wv[i]) / s.bc2_sqrt + s.eps;
    wp[i] = wp[i] * s.decay + (-s.step_size) * (wm[i] / denom);
    st(&want_half[i], wp[i]);
  }
  if (!with_half) want_half = half;
  emu::launch(2, 1, 64, 0, [&] {
    ew::adamw<N, H>(p.data(), g.data(), m.data(), v.data(), with_half ? half.data() : nullptr, n, s);
  });
  EXPECT_EQ(differ(p, wp) + differ(m, wm) + differ(v, wv), 0u) << "adamw, width " << N << ", " << n;
  EXPECT_EQ(differ(half, want_half), 0u) << "adamw's compute copy, width " << N << ", " << n;
}

TEST(ElementwiseEmulated, AdamwBothWidthsAndTails) {
  adamw_case<4, bf16>(4 * 128 * 3 + 3, true);
  adamw_case<4, f16>(9, true);
  adamw_case<4, bf16>(100, false);
  adamw_case<1, bf16>(77, true);
}

// The f32 add and scale, both widths, with a tail: each element's own sum or product.
template <int N>
void add_scale_case(int64_t n) {
  auto y = randn<float>(size_t(n), 13);
  const auto x = randn<float>(size_t(n), 14);
  auto want = y;
  for (size_t i = 0; i < want.size(); ++i) want[i] = (want[i] + x[i]) * 0.37f;
  emu::launch(2, 1, 64, 0, [&] { ew::add<N>(y.data(), x.data(), n); });
  emu::launch(2, 1, 64, 0, [&] { ew::scale<N>(y.data(), 0.37f, n); });
  EXPECT_EQ(differ(y, want), 0u) << "add then scale, width " << N << ", " << n;
}

TEST(ElementwiseEmulated, AddAndScaleBothWidths) {
  add_scale_case<4>(4 * 128 * 2 + 3);
  add_scale_case<4>(2);
  add_scale_case<1>(301);
}

// The sums' first pass: every element counted once (tails, grid-stride over three blocks), each
// block's partial in its slot; f32 4 at a time or 1, f64 1.
template <int N, cs::cuda::red::Fold kFold, typename T>
void reduce_case(int64_t n) {
  using cs::cuda::red::Fold;
  std::vector<T> x(static_cast<size_t>(n));
  std::mt19937 rng(12);
  std::normal_distribution<double> nd(0.0, 2.0);
  for (auto& v : x) v = T(nd(rng));
  if (kFold == Fold::kZeros)  // every fifth a zero, every seventh -0
    for (int64_t i = 0; i < n; i += 5) x[size_t(i)] = T(i % 7 == 0 ? -0.0 : 0.0);
  const unsigned blocks = 3;
  std::vector<double> partial(blocks, NAN);
  emu::launch(blocks, 1, cs::cuda::red::kThreads, 0,
              [&] { cs::cuda::red::partial_kernel<N, kFold, T>(x.data(), n, partial.data()); });
  double got = 0, want = 0, scale = 0;
  for (double p : partial) got += p;
  for (T v : x) {
    want += kFold == Fold::kSquares ? double(v) * double(v) : kFold == Fold::kZeros ? (v == T(0) ? 1.0 : 0.0) : double(v);
    scale += double(v) * double(v);
  }
  if (kFold == Fold::kZeros) {
    EXPECT_EQ(got, want) << "zeros, width " << N << ", " << n;
    return;
  }
  EXPECT_NEAR(got, want, 1e-12 * (scale + 1)) << (kFold == Fold::kSquares ? "sum of squares" : "sum") << ", width "
                                              << N << ", " << n;
}

TEST(ElementwiseEmulated, SumsFirstPassCountsEveryElementOnce) {
  for (const int64_t n : {0, 3, 4 * 256 * 3 * 2 + 7, 5000}) {
    using cs::cuda::red::Fold;
    reduce_case<4, Fold::kSquares, float>(n);
    reduce_case<4, Fold::kSum, float>(n);
    reduce_case<4, Fold::kZeros, float>(n);
    reduce_case<1, Fold::kSquares, float>(n);
    reduce_case<1, Fold::kZeros, float>(n);
    reduce_case<1, Fold::kSum, double>(n);
  }
}

}  // namespace
