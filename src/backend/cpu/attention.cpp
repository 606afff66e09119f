// Causal attention, flash-style (Dao et al. 2022; FlashAttention-2, Alg. 1 and 2): a block of kBq
// queries visits the key blocks of kBk keys at or before it with an online softmax, so memory is
// O(T * Hd) per head, never O(T^2). The block products (scores Q K^T, P V, and in the backward
// dP = dO V^T, dV += P^T dO, dQ += dS K, dK += dS^T Q) are GEMMs through cblas_sgemm on the
// calling thread (inside the OpenMP region OpenBLAS runs single-threaded), the softmax and the
// masks between them are one pass over the kBq x kBk tile.
// score(i, j) = q_i . k_j / sqrt(Hd) + slope * (j - i) for j <= i (ALiBi; HF adds slope * j,
// which differs by a per-row constant that softmax removes). lse_i = log sum_j exp(score(i, j)).
// q, k, v, o, dout, dq, dk, dv: (B, H, T, Hd); lse: (B, H, T); slopes: (H) or empty.
// Packed sequences (segments): a run of equal ids is one sample; query i sees keys
// [start(i), i], start(i) the first position of its run. Starts never decrease along a sequence,
// so a query block's first key block is the one holding its first row's start, and in the
// backward a key block's query blocks end at the first one whose first row starts after it: the
// tiles across sample boundaries are never computed. A row can meet a tile wholly before its
// start (its running max still -inf): its exponentials are taken against 0 instead, giving 0.
// Backward recomputes p_ij = exp(score - lse_i) per tile; D_i = dout_i . o_i. Work is split over
// (batch, head) pairs, each done by one thread in a fixed order: results are the same for any
// thread count.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/fast_exp.h"
#include "backend/cpu/ops.h"
#include "backend/op_check.h"

namespace cs::cpu {

namespace {
constexpr int64_t kBq = 64, kBk = 64;
// Equal and aligned: every tile a query block visits holds at least one key at or before each of
// its queries, so no row of a tile is all masked (its running max would be -inf).
static_assert(kBq == kBk);

struct Dims {
  int64_t b, h, t, hd;
};

Dims check_dims(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& slopes) {
  CS_CHECK(q.ndim() == 4 && q.shape == k.shape && q.shape == v.shape)
      << q.shape.str() << k.shape.str() << v.shape.str();
  Dims d{q.size(0), q.size(1), q.size(2), q.size(3)};
  CS_CHECK(slopes.numel() == 0 || slopes.numel() == d.h) << slopes.shape.str();
  return d;
}

// The dtype and device checks the forward and the backward share.
void check_attention_args(const char* op, const Tensor& q, const Tensor& k, const Tensor& v,
                          const Tensor& slopes, const Tensor& segments) {
  check_f32(op, "q", q, Device::CPU);
  check_f32(op, "k", k, Device::CPU);
  check_f32(op, "v", v, Device::CPU);
  if (slopes.numel()) check_f32(op, "slopes", slopes, Device::CPU);
  if (segments.numel()) {
    check_arg(op, "segments", segments, DType::I32, Device::CPU);
    CS_CHECK(segments.numel() == q.size(0) * q.size(2)) << segments.shape.str() << q.shape.str();
  }
}

// starts[b * T + t]: the first position of the segment (run of equal ids) holding position t of
// sequence b; all 0 without segments. In reusable per-thread scratch.
const int32_t* segment_starts(const Tensor& segments, int64_t b, int64_t t_len) {
  thread_local std::vector<int32_t> starts;
  starts.assign(size_t(b * t_len), 0);
  if (segments.numel() == 0) return starts.data();
  const int32_t* seg = segments.i32();
  for (int64_t bi = 0; bi < b; ++bi)
    for (int64_t t = 1; t < t_len; ++t) {
      const int64_t i = bi * t_len + t;
      starts[size_t(i)] = seg[i] == seg[i - 1] ? starts[size_t(i - 1)] : int32_t(t);
    }
  return starts.data();
}

// c (m x n, row stride ldc) = alpha * op(a) op(b) + beta * c, row-major, on this thread.
inline void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                 const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m), int(n), int(k),
              alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
}

// The scores of a tile in place: s (rows x kBk, columns [0, cols)) = scale * q k^T (already in s
// unscaled) + slope * (j - i); a key after its query (the diagonal tile) or before its segment's
// start (starts: the tile's rows' starts) gets -inf.
inline void finish_scores(float* s, int64_t rows, int64_t cols, int64_t i0, int64_t j0, float scale, float slope,
                          const int32_t* starts) {
  for (int64_t r = 0; r < rows; ++r) {
    float* sr = s + r * kBk;
    const int64_t i = i0 + r, last = std::min(cols, i - j0 + 1);  // keys j0 .. i are visible
    const int64_t first = std::min<int64_t>(std::max<int64_t>(starts[r] - j0, 0), cols);
    const float bias0 = slope * float(j0 - i);
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) sr[c] = sr[c] * scale + bias0 + slope * float(c);
    for (int64_t c = 0; c < first; ++c) sr[c] = -INFINITY;
    for (int64_t c = std::max<int64_t>(last, 0); c < cols; ++c) sr[c] = -INFINITY;
  }
}
}  // namespace

void attention_forward(Ctx&, const Tensor& q, const Tensor& k, const Tensor& v,
                       const Tensor& slopes, const Tensor& segments, const Tensor& o, const Tensor& lse) {
  check_attention_args("attention_forward", q, k, v, slopes, segments);
  check_f32_args("attention_forward", Device::CPU, {{"o", &o}, {"lse", &lse}});
  const Dims dm = check_dims(q, k, v, slopes);
  CS_CHECK(o.shape == q.shape && lse.numel() == dm.b * dm.h * dm.t);
  const int64_t hd = dm.hd, t_len = dm.t, nqb = (t_len + kBq - 1) / kBq;
  const float scale = 1.f / std::sqrt(float(hd));
  const int32_t* starts = segment_starts(segments, dm.b, t_len);
#pragma omp parallel
  {
    thread_local std::vector<float> acc, tile;
    acc.resize(size_t(kBq * hd));
    tile.resize(size_t(kBq * kBk));
    float m[kBq], l[kBq];
#pragma omp for collapse(2) schedule(dynamic)
    for (int64_t bh = 0; bh < dm.b * dm.h; ++bh)
      for (int64_t qb = nqb - 1; qb >= 0; --qb) {  // long rows first: better balance
        const float slope = slopes.numel() ? slopes.f32()[bh % dm.h] : 0.f;
        const float* qh = q.f32() + bh * t_len * hd;
        const float* kh = k.f32() + bh * t_len * hd;
        const float* vh = v.f32() + bh * t_len * hd;
        const int64_t i0 = qb * kBq, i1 = std::min(i0 + kBq, t_len), rows = i1 - i0;
        const int32_t* st = starts + (bh / dm.h) * t_len + i0;  // the block's rows' segment starts
        for (int64_t r = 0; r < rows; ++r) { m[r] = -INFINITY; l[r] = 0.f; }
        float* s = tile.data();
        const int64_t jfirst = st[0] / kBk * kBk;  // key blocks before the first row's start: all masked
        for (int64_t j0 = jfirst; j0 < i1; j0 += kBk) {
          const int64_t cols = std::min(j0 + kBk, i1) - j0;
          gemm(false, true, rows, cols, hd, 1.f, qh + i0 * hd, hd, kh + j0 * hd, hd, 0.f, s, kBk);
          finish_scores(s, rows, cols, i0, j0, scale, slope, st);
          for (int64_t r = 0; r < rows; ++r) {
            float* sr = s + r * kBk;
            float mx = m[r];
            for (int64_t c = 0; c < cols; ++c) mx = std::max(mx, sr[c]);
            // A row with no visible key yet (packed: the tile is before its start) keeps m = -inf;
            // exponentials against 0 then give 0 instead of NaN.
            const float mref = mx == -INFINITY ? 0.f : mx;
            const float corr = fast_exp(m[r] - mref);  // 0 on the first tile (m = -inf)
            float psum = 0.f;
#pragma omp simd reduction(+ : psum)
            for (int64_t c = 0; c < cols; ++c) {
              sr[c] = fast_exp(sr[c] - mref);  // masked keys: exp(-inf) = 0
              psum += sr[c];
            }
            l[r] = l[r] * corr + psum;
            m[r] = mx;
            float* a = acc.data() + r * hd;
            if (j0 == jfirst) {
              std::fill(a, a + hd, 0.f);
            } else {
#pragma omp simd
              for (int64_t d = 0; d < hd; ++d) a[d] *= corr;
            }
          }
          gemm(false, false, rows, hd, cols, 1.f, s, kBk, vh + j0 * hd, hd, 1.f, acc.data(), hd);  // acc += P V
        }
        for (int64_t r = 0; r < rows; ++r) {
          float* orow = o.f32() + (bh * t_len + i0 + r) * hd;
          const float inv = 1.f / l[r];
          for (int64_t d = 0; d < hd; ++d) orow[d] = acc[size_t(r * hd + d)] * inv;
          lse.f32()[bh * t_len + i0 + r] = m[r] + std::log(l[r]);
        }
      }
  }
}

void attention_backward(Ctx&, const Tensor& q, const Tensor& k, const Tensor& v,
                        const Tensor& slopes, const Tensor& segments, const Tensor& o, const Tensor& lse,
                        const Tensor& dout, const Tensor& dq, const Tensor& dk, const Tensor& dv) {
  check_attention_args("attention_backward", q, k, v, slopes, segments);
  check_f32_args("attention_backward", Device::CPU,
                 {{"o", &o}, {"lse", &lse}, {"dout", &dout}, {"dq", &dq}, {"dk", &dk}, {"dv", &dv}});
  const Dims dm = check_dims(q, k, v, slopes);
  CS_CHECK(dout.shape == q.shape && dq.shape == q.shape && dk.shape == q.shape && dv.shape == q.shape);
  const int64_t hd = dm.hd, t_len = dm.t;
  const float scale = 1.f / std::sqrt(float(hd));
  const int32_t* starts = segment_starts(segments, dm.b, t_len);
#pragma omp parallel
  {
    thread_local std::vector<float> dvec, p, dp;
    dvec.resize(size_t(t_len));
    p.resize(size_t(kBq * kBk));
    dp.resize(size_t(kBq * kBk));
#pragma omp for schedule(dynamic)
    for (int64_t bh = 0; bh < dm.b * dm.h; ++bh) {
      const float slope = slopes.numel() ? slopes.f32()[bh % dm.h] : 0.f;
      const int64_t off = bh * t_len * hd;
      const float *qh = q.f32() + off, *kh = k.f32() + off, *vh = v.f32() + off;
      const float *oh = o.f32() + off, *doh = dout.f32() + off, *lh = lse.f32() + bh * t_len;
      const int32_t* sth = starts + (bh / dm.h) * t_len;
      float *dqh = dq.f32() + off, *dkh = dk.f32() + off, *dvh = dv.f32() + off;
      std::fill(dqh, dqh + t_len * hd, 0.f);
      std::fill(dkh, dkh + t_len * hd, 0.f);
      std::fill(dvh, dvh + t_len * hd, 0.f);
      for (int64_t i = 0; i < t_len; ++i) {
        float acc = 0.f;
        for (int64_t d = 0; d < hd; ++d) acc += doh[i * hd + d] * oh[i * hd + d];
        dvec[size_t(i)] = acc;
      }
      // Key blocks outer (their dK, dV finish in one pass), the query blocks at or after each inner.
      for (int64_t j0 = 0; j0 < t_len; j0 += kBk) {
        const int64_t cols = std::min(kBk, t_len - j0);
        for (int64_t i0 = j0 / kBq * kBq; i0 < t_len; i0 += kBq) {
          if (sth[i0] >= j0 + cols) break;  // this block's rows (and every later one's) start after the keys
          const int64_t rows = std::min(kBq, t_len - i0);
          float* s = p.data();
          gemm(false, true, rows, cols, hd, 1.f, qh + i0 * hd, hd, kh + j0 * hd, hd, 0.f, s, kBk);
          finish_scores(s, rows, cols, i0, j0, scale, slope, sth + i0);
          gemm(false, true, rows, cols, hd, 1.f, doh + i0 * hd, hd, vh + j0 * hd, hd, 0.f, dp.data(), kBk);  // dO V^T
          for (int64_t r = 0; r < rows; ++r) {
            float* sr = s + r * kBk;
            float* dpr = dp.data() + r * kBk;
            const float li = lh[i0 + r], di = dvec[size_t(i0 + r)];
#pragma omp simd
            for (int64_t c = 0; c < cols; ++c) {
              sr[c] = fast_exp(sr[c] - li);             // P
              dpr[c] = sr[c] * (dpr[c] - di) * scale;   // dS (the score's scale folded in)
            }
          }
          gemm(true, false, cols, hd, rows, 1.f, s, kBk, doh + i0 * hd, hd, 1.f, dvh + j0 * hd, hd);         // dV += P^T dO
          gemm(false, false, rows, hd, cols, 1.f, dp.data(), kBk, kh + j0 * hd, hd, 1.f, dqh + i0 * hd, hd);  // dQ += dS K
          gemm(true, false, cols, hd, rows, 1.f, dp.data(), kBk, qh + i0 * hd, hd, 1.f, dkh + j0 * hd, hd);  // dK += dS^T Q
        }
      }
    }
  }
}

}  // namespace cs::cpu
