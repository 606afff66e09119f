// The per-tile element-wise work of the flash loops (attention_tile.h): portable loops, and one
// pass per tile in AVX-512 where the build targets it (bf16 outputs need AVX-512 BF16's
// round-to-nearest-even conversions).
#include "backend/cpu/attention_tile.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "backend/cpu/fast_exp.h"

#include "backend/cpu/intrinsics.h"

namespace cs::cpu::flash {

void finish_scores(float* s, const TileArgs& t) {
  for (int64_t r = 0; r < t.rows; ++r) {
    float* sr = s + r * kBk;
    const int64_t i = t.i0 + r, last = std::min(t.cols, i - t.j0 + 1);  // keys j0 .. i are visible
    const int64_t first = std::min<int64_t>(std::max<int64_t>(t.starts[r] - t.j0, 0), t.cols);
    const float bias0 = t.slope * float(t.j0 - i);
#pragma omp simd
    for (int64_t c = 0; c < t.cols; ++c) sr[c] = sr[c] * t.scale + bias0 + t.slope * float(c);
    for (int64_t c = 0; c < first; ++c) sr[c] = -INFINITY;
    for (int64_t c = std::max<int64_t>(last, 0); c < t.cols; ++c) sr[c] = -INFINITY;
  }
}

namespace {

// A tile of f32 values (rows x cols, ld kBk) as bf16 rows: all kBk columns, those past cols 0.
void tile_to_bf16(const float* x, int64_t rows, int64_t cols, Bf16* dst) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < kBk; ++c) store(dst + r * kBk + c, c < cols ? x[r * kBk + c] : 0.f);
}
// ... as the packed right-hand operand with its rows as the reduction index.
void tile_to_bf16_row_pairs(const float* x, int64_t rows, int64_t cols, Bf16* dst) {
  for (int64_t p = 0; p < (rows + 1) / 2; ++p)
    for (int64_t j = 0; j < kBk; ++j)
      for (int64_t e = 0; e < 2; ++e) {
        const int64_t r = 2 * p + e;
        store(dst + (p * kBk + j) * 2 + e, r < rows && j < cols ? x[r * kBk + j] : 0.f);
      }
}

template <typename P>
void softmax_portable(float* s, const TileArgs& t, float* m, float* l, float* corr, P* p) {
  finish_scores(s, t);
  for (int64_t r = 0; r < t.rows; ++r) {
    const float* sr = s + r * kBk;
    P* pr = p + r * kBk;
    const float mx = max_of(sr, t.cols, m[r]);
    // A row with no visible key yet (packed: the tile is before its start) keeps m = -inf;
    // exponentials against 0 then give 0 instead of NaN.
    const float mref = mx == -INFINITY ? 0.f : mx;
    corr[r] = fast_exp(m[r] - mref);  // 0 on the row's first tile (m = -inf)
    float psum = 0.f;
    for (int64_t c = 0; c < t.cols; ++c) {
      const float e = fast_exp(sr[c] - mref);  // masked keys: exp(-inf) = 0
      psum += e;
      store(pr + c, e);
    }
    for (int64_t c = t.cols; c < kBk; ++c) store(pr + c, 0.f);
    l[r] = l[r] * corr[r] + psum;
    m[r] = mx;
  }
}

#ifdef __AVX512F__
static_assert(kBk == 64, "a tile row is four 16-lane vectors");
constexpr int kVecs = int(kBk / 16);

// fast_exp (fast_exp.h) on 16 lanes: the same steps.
inline __m512 exp16(__m512 x) {
  const __m512 lo = _mm512_set1_ps(-87.3f), hi = _mm512_set1_ps(88.7f), magic = _mm512_set1_ps(12582912.f);
  // max/min return their second operand when one is NaN: x second, so NaN (a broken run) comes
  // through as in fast_exp instead of being clamped into a tiny probability.
  const __m512 xc = _mm512_min_ps(hi, _mm512_max_ps(lo, x));
  const __m512 n = _mm512_sub_ps(_mm512_fmadd_ps(xc, _mm512_set1_ps(1.44269504088896341f), magic), magic);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xc);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.f / 720.f);
  for (float c : {1.f / 120.f, 1.f / 24.f, 1.f / 6.f, 0.5f, 1.f, 1.f}) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
  const __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  const __m512 y = _mm512_mul_ps(p, _mm512_castsi512_ps(bits));
  const __m512 y0 = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ), _mm512_setzero_ps());
  return _mm512_mask_mov_ps(y0, _mm512_cmp_ps_mask(x, hi, _CMP_GT_OQ), _mm512_set1_ps(INFINITY));
}

// The tile's shared terms: the scale, and slope * c for the columns of each vector.
struct TileVec {
  __m512 scale, slope_c[kVecs];
  explicit TileVec(const TileArgs& t) : scale(_mm512_set1_ps(t.scale)) {
    const __m512 iota = _mm512_set_ps(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    for (int v = 0; v < kVecs; ++v)
      slope_c[v] = _mm512_mul_ps(_mm512_set1_ps(t.slope), _mm512_add_ps(iota, _mm512_set1_ps(float(16 * v))));
  }
};

// Row r's visible columns, [start - j0, i - j0] within [0, cols), as a bit mask.
inline uint64_t visible(const TileArgs& t, int64_t r) {
  const int64_t last = std::clamp<int64_t>(t.i0 + r - t.j0 + 1, 0, t.cols);
  const int64_t first = std::clamp<int64_t>(t.starts[r] - t.j0, 0, last);
  auto below = [](int64_t n) { return n >= 64 ? ~uint64_t(0) : (uint64_t(1) << n) - 1; };
  return below(last) & ~below(first);
}
inline __mmask16 lanes(uint64_t vis, int v) { return __mmask16(vis >> (16 * v)); }

// Row r's masked scores (-inf where not visible) in x.
inline void row_scores(const float* s, const TileArgs& t, const TileVec& tv, int64_t r, uint64_t vis, __m512* x) {
  const __m512 bias0 = _mm512_set1_ps(t.slope * float(t.j0 - (t.i0 + r))), ninf = _mm512_set1_ps(-INFINITY);
  for (int v = 0; v < kVecs; ++v) {
    const __mmask16 k = lanes(vis, v);
    const __m512 y = _mm512_maskz_loadu_ps(k, s + r * kBk + 16 * v);
    x[v] = _mm512_mask_mov_ps(ninf, k, _mm512_fmadd_ps(y, tv.scale, _mm512_add_ps(bias0, tv.slope_c[v])));
  }
}

inline void store_row(float* dst, const __m512& x) { _mm512_storeu_ps(dst, x); }

// One pass per row: scores, max, exponentials, their sum; the row's P handed to put(r, e).
template <class Put>
void softmax_vec(float* s, const TileArgs& t, float* m, float* l, float* corr, Put put) {
  const TileVec tv(t);
  for (int64_t r = 0; r < t.rows; ++r) {
    __m512 x[kVecs], e[kVecs];
    row_scores(s, t, tv, r, visible(t, r), x);
    const float mx = std::max(m[r], _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(x[0], x[1]),
                                                                        _mm512_max_ps(x[2], x[3]))));
    const float mref = mx == -INFINITY ? 0.f : mx;  // as in softmax_portable
    corr[r] = fast_exp(m[r] - mref);
    const __m512 mv = _mm512_set1_ps(mref);
    __m512 sum = _mm512_setzero_ps();
    for (int v = 0; v < kVecs; ++v) {
      e[v] = exp16(_mm512_sub_ps(x[v], mv));
      sum = _mm512_add_ps(sum, e[v]);
    }
    l[r] = l[r] * corr[r] + _mm512_reduce_add_ps(sum);
    m[r] = mx;
    put(r, e);
  }
}

// Row r's P and dS in registers.
inline void row_p_ds(const float* s, const float* dp, const TileArgs& t, const TileVec& tv, int64_t r,
                     const float* lse, const float* dvec, __m512* p, __m512* ds) {
  const uint64_t vis = visible(t, r);
  __m512 x[kVecs];
  row_scores(s, t, tv, r, vis, x);
  const __m512 li = _mm512_set1_ps(lse[r]), di = _mm512_set1_ps(dvec[r]);
  for (int v = 0; v < kVecs; ++v) {
    p[v] = exp16(_mm512_sub_ps(x[v], li));
    const __m512 d = _mm512_maskz_loadu_ps(lanes(vis, v), dp + r * kBk + 16 * v);
    ds[v] = _mm512_mul_ps(_mm512_mul_ps(p[v], _mm512_sub_ps(d, di)), tv.scale);  // masked lanes: 0
  }
}
#endif

#ifdef __AVX512BF16__
inline void store_row(Bf16* dst, const __m512& x) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), (__m256i)_mm512_cvtneps_pbh(x));
}
// Two rows' 16 columns interleaved as pairs: dst[2j + e] = round(row e's column j).
inline void store_pairs(Bf16* dst, const __m512& r0, const __m512& r1) {
  const __m512i inter = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                         21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  _mm512_storeu_si512(dst, _mm512_permutexvar_epi16(inter, (__m512i)_mm512_cvtne2ps_pbh(r1, r0)));
}
#endif

}  // namespace

void softmax_tile_portable(float* s, const TileArgs& t, float* m, float* l, float* corr, float* p) {
  softmax_portable(s, t, m, l, corr, p);
}
void softmax_tile_portable(float* s, const TileArgs& t, float* m, float* l, float* corr, Bf16* p) {
  softmax_portable(s, t, m, l, corr, p);
}

void p_ds_tile_portable(float* s, float* dp, const TileArgs& t, const float* lse, const float* dvec) {
  finish_scores(s, t);
  for (int64_t r = 0; r < t.rows; ++r) {
    float *sr = s + r * kBk, *dpr = dp + r * kBk;
    const float li = lse[r], di = dvec[r];
    // A masked score (-inf) gives P = dS = 0 whatever dP holds there: a product may leave the
    // masked triangle of dP uncomputed (pair_gemm.h's Tri), as the vector path's masked load does.
#pragma omp simd
    for (int64_t c = 0; c < t.cols; ++c) {
      const bool masked = sr[c] == -INFINITY;
      sr[c] = fast_exp(sr[c] - li);
      dpr[c] = masked ? 0.f : sr[c] * (dpr[c] - di) * t.scale;
    }
    std::fill(sr + t.cols, sr + kBk, 0.f);
    std::fill(dpr + t.cols, dpr + kBk, 0.f);
  }
}
void p_ds_tile_portable(float* s, float* dp, const TileArgs& t, const float* lse, const float* dvec,
                        Bf16* p_pairs, Bf16* ds_rows, Bf16* ds_pairs) {
  p_ds_tile_portable(s, dp, t, lse, dvec);
  tile_to_bf16_row_pairs(s, t.rows, t.cols, p_pairs);
  tile_to_bf16(dp, t.rows, t.cols, ds_rows);
  tile_to_bf16_row_pairs(dp, t.rows, t.cols, ds_pairs);
}

namespace {
// Whether this build stores P of element type P from vector registers: f32 with AVX-512, bf16 with
// its BF16 conversions.
#ifdef __AVX512BF16__
constexpr bool kVecBf16 = true;
#else
constexpr bool kVecBf16 = false;
#endif
template <typename P>
void softmax_into(float* s, const TileArgs& t, float* m, float* l, float* corr, P* p) {
#ifdef __AVX512F__
  if constexpr (std::is_same_v<P, float> || kVecBf16) {
    softmax_vec(s, t, m, l, corr, [&](int64_t r, const __m512* e) {
      for (int v = 0; v < kVecs; ++v) store_row(p + r * kBk + 16 * v, e[v]);
    });
    return;
  }
#endif
  softmax_portable(s, t, m, l, corr, p);
}
}  // namespace

void softmax_tile(float* s, const TileArgs& t, float* m, float* l, float* corr, float* p) {
  softmax_into(s, t, m, l, corr, p);
}
void softmax_tile(float* s, const TileArgs& t, float* m, float* l, float* corr, Bf16* p) {
  softmax_into(s, t, m, l, corr, p);
}

void p_ds_tile(float* s, float* dp, const TileArgs& t, const float* lse, const float* dvec) {
#ifdef __AVX512F__
  const TileVec tv(t);
  for (int64_t r = 0; r < t.rows; ++r) {
    __m512 p[kVecs], ds[kVecs];
    row_p_ds(s, dp, t, tv, r, lse, dvec, p, ds);
    for (int v = 0; v < kVecs; ++v) {
      store_row(s + r * kBk + 16 * v, p[v]);
      store_row(dp + r * kBk + 16 * v, ds[v]);
    }
  }
#else
  p_ds_tile_portable(s, dp, t, lse, dvec);
#endif
}

void p_ds_tile(float* s, float* dp, const TileArgs& t, const float* lse, const float* dvec, Bf16* p_pairs,
               Bf16* ds_rows, Bf16* ds_pairs) {
#ifdef __AVX512BF16__
  const TileVec tv(t);
  for (int64_t r = 0; r < t.rows; r += 2) {  // a pair of rows: one row of the paired outputs
    __m512 p0[kVecs], ds0[kVecs], p1[kVecs], ds1[kVecs];
    row_p_ds(s, dp, t, tv, r, lse, dvec, p0, ds0);
    if (r + 1 < t.rows) {
      row_p_ds(s, dp, t, tv, r + 1, lse, dvec, p1, ds1);
    } else {
      for (int v = 0; v < kVecs; ++v) p1[v] = ds1[v] = _mm512_setzero_ps();
    }
    for (int v = 0; v < kVecs; ++v) {
      store_pairs(p_pairs + (r / 2 * kBk + 16 * v) * 2, p0[v], p1[v]);
      store_pairs(ds_pairs + (r / 2 * kBk + 16 * v) * 2, ds0[v], ds1[v]);
      store_row(ds_rows + r * kBk + 16 * v, ds0[v]);
      if (r + 1 < t.rows) store_row(ds_rows + (r + 1) * kBk + 16 * v, ds1[v]);
    }
  }
#else
  p_ds_tile_portable(s, dp, t, lse, dvec, p_pairs, ds_rows, ds_pairs);
#endif
}

}  // namespace cs::cpu::flash
