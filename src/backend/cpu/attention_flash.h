// The flash-attention loops (Dao et al. 2022; FlashAttention-2, Alg. 1 and 2), shared by the f32
// kernel (attention.cpp, tile products through cblas_sgemm) and the bf16 one (attention_bf16.cpp,
// tile products on AVX-512 BF16 dot products): the blocking, the masks (causal, ALiBi, packed
// samples) and the online softmax live here once; a tile-math class does the products.
//
// A block of kBq queries visits the key blocks of kBk keys at or before it with an online softmax,
// so memory is O(T * Hd) per head, never O(T^2).
// score(i, j) = q_i . k_j / sqrt(Hd) + slope * (j - i) for j <= i (ALiBi; HF adds slope * j,
// which differs by a per-row constant that softmax removes). lse_i = log sum_j exp(score(i, j)).
// Packed sequences (segments): a run of equal ids is one sample; query i sees keys
// [start(i), i], start(i) the first position of its run. Starts never decrease along a sequence,
// so a query block's first key block is the one holding its first row's start, and in the
// backward a key block's query blocks end at the first one whose first row starts after it: the
// tiles across sample boundaries are never computed. A row can meet a tile wholly before its
// start (its running max still -inf): its exponentials are taken against 0 instead, giving 0.
// Backward recomputes p_ij = exp(score - lse_i) per tile; D_i = dout_i . o_i. Work is split over
// (batch, head) pairs (and query blocks in the forward), each done by one thread in a fixed order:
// results are the same for any thread count.
//
// Tile math (class M, one M::Local per thread; tiles of scores are f32, ld kBk; acc, dq, dk, dv
// rows are f32 with ld Hd; the element-wise work on a tile is attention_tile.h's):
//   Local(const M&); head(bh, backward)          select a (batch, head) pair
//   scores(i0, rows, j0, cols, s)                s = q k^T (unscaled)
//   softmax(s, tile, m, l, corr) -> p            the online softmax's step; p: the tile's P in the
//                                                form add_pv reads
//   add_pv(p, i0, rows, j0, cols, acc)           acc += P V
//   key_block(j0, cols, dk, dv)                  backward: the next key block (its dK, dV rows are
//                                                zeroed here or written whole by end_key_block)
//   dp(i0, rows, j0, cols, dp)                   dp = dO V^T
//   grads(s, dp, tile, lse, dvec, dq, dk, dv)    P and dS from the tile (attention_tile.h's
//                                                p_ds_tile), then dV += P^T dO, dQ += dS K,
//                                                dK += dS^T Q
//   end_key_block(j0, cols, dk, dv)              the key block's dK, dV rows are final (a math
//                                                that accumulates them elsewhere writes them here)
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "backend/cpu/attention_tile.h"
#include "backend/cpu/bf16.h"
#include "core/tensor.h"

namespace cs::cpu::flash {

// kBq, kBk: attention_tile.h. Equal and aligned: without packed samples every tile a query block
// visits holds at least one key at or before each of its queries (with them, a row may see none:
// the softmax keeps its max at -inf, see above); and a tile is on the diagonal exactly when
// i0 == j0, which the bf16 products use to skip the masked triangle.
static_assert(kBq == kBk);

struct Dims {
  int64_t b, h, t, hd;
};

// starts[b * T + t]: the first position of the segment (run of equal ids) holding position t of
// sequence b; all 0 without segments. In reusable per-thread scratch.
const int32_t* segment_starts(const Tensor& segments, int64_t b, int64_t t_len);

// q, k, v, o, dout: T (float or Bf16) with (B, H, T, Hd); lse: (B, H, T) f32; slopes: (H) or null.
template <typename T, class M>
void forward(const Dims& dm, const M& math, const float* slopes, const int32_t* starts, T* o, float* lse) {
  const int64_t hd = dm.hd, t_len = dm.t, nqb = (t_len + kBq - 1) / kBq;
  const float scale = 1.f / std::sqrt(float(hd));
#pragma omp parallel
  {
    thread_local std::vector<float> acc, tile;
    acc.resize(size_t(kBq * hd));
    tile.resize(size_t(kBq * kBk));
    typename M::Local tm(math);
    float m[kBq], l[kBq], corr[kBq];
#pragma omp for collapse(2) schedule(dynamic)
    for (int64_t bh = 0; bh < dm.b * dm.h; ++bh)
      for (int64_t qb = nqb - 1; qb >= 0; --qb) {  // long rows first: better balance
        const float slope = slopes ? slopes[bh % dm.h] : 0.f;
        tm.head(bh, false);
        const int64_t i0 = qb * kBq, i1 = std::min(i0 + kBq, t_len), rows = i1 - i0;
        const int32_t* st = starts + (bh / dm.h) * t_len + i0;  // the block's rows' segment starts
        for (int64_t r = 0; r < rows; ++r) { m[r] = -INFINITY; l[r] = 0.f; }
        float* s = tile.data();
        const int64_t jfirst = st[0] / kBk * kBk;  // key blocks before the first row's start: all masked
        for (int64_t j0 = jfirst; j0 < i1; j0 += kBk) {
          const int64_t cols = std::min(j0 + kBk, i1) - j0;
          tm.scores(i0, rows, j0, cols, s);
          const auto* p = tm.softmax(s, TileArgs{rows, cols, i0, j0, scale, slope, st}, m, l, corr);
          for (int64_t r = 0; r < rows; ++r) {
            float* a = acc.data() + r * hd;
            if (j0 == jfirst) {
              std::fill(a, a + hd, 0.f);
            } else {
#pragma omp simd
              for (int64_t d = 0; d < hd; ++d) a[d] *= corr[r];
            }
          }
          tm.add_pv(p, i0, rows, j0, cols, acc.data());
        }
        for (int64_t r = 0; r < rows; ++r) {
          T* orow = o + (bh * t_len + i0 + r) * hd;
          const float inv = 1.f / l[r];
          for (int64_t d = 0; d < hd; ++d) store(orow + d, acc[size_t(r * hd + d)] * inv);
          lse[bh * t_len + i0 + r] = m[r] + std::log(l[r]);
        }
      }
  }
}

// o, dout: T with (B, H, T, Hd); dq, dk, dv: f32 (B, H, T, Hd), overwritten.
template <typename T, class M>
void backward(const Dims& dm, const M& math, const float* slopes, const int32_t* starts, const T* o,
              const float* lse, const T* dout, float* dq, float* dk, float* dv) {
  const int64_t hd = dm.hd, t_len = dm.t;
  const float scale = 1.f / std::sqrt(float(hd));
#pragma omp parallel
  {
    thread_local std::vector<float> dvec, p, dp;
    dvec.resize(size_t(t_len));
    p.resize(size_t(kBq * kBk));
    dp.resize(size_t(kBq * kBk));
    typename M::Local tm(math);
#pragma omp for schedule(dynamic)
    for (int64_t bh = 0; bh < dm.b * dm.h; ++bh) {
      const float slope = slopes ? slopes[bh % dm.h] : 0.f;
      tm.head(bh, true);
      const int64_t off = bh * t_len * hd;
      const T *oh = o + off, *doh = dout + off;
      const float* lh = lse + bh * t_len;
      const int32_t* sth = starts + (bh / dm.h) * t_len;
      float *dqh = dq + off, *dkh = dk + off, *dvh = dv + off;
      std::fill(dqh, dqh + t_len * hd, 0.f);  // dK, dV: by the key blocks (key_block, end_key_block)
      for (int64_t i = 0; i < t_len; ++i) {
        float acc = 0.f;
#pragma omp simd reduction(+ : acc)
        for (int64_t d = 0; d < hd; ++d) acc += load(doh + i * hd + d) * load(oh + i * hd + d);
        dvec[size_t(i)] = acc;
      }
      // Key blocks outer (their dK, dV finish in one pass), the query blocks at or after each inner.
      for (int64_t j0 = 0; j0 < t_len; j0 += kBk) {
        const int64_t cols = std::min(kBk, t_len - j0);
        tm.key_block(j0, cols, dkh, dvh);
        for (int64_t i0 = j0 / kBq * kBq; i0 < t_len; i0 += kBq) {
          if (sth[i0] >= j0 + cols) break;  // this block's rows (and every later one's) start after the keys
          const int64_t rows = std::min(kBq, t_len - i0);
          tm.scores(i0, rows, j0, cols, p.data());
          tm.dp(i0, rows, j0, cols, dp.data());  // dO V^T
          tm.grads(p.data(), dp.data(), TileArgs{rows, cols, i0, j0, scale, slope, sth + i0}, lh + i0,
                   dvec.data() + i0, dqh, dkh, dvh);
        }
        tm.end_key_block(j0, cols, dkh, dvh);
      }
    }
  }
}

}  // namespace cs::cpu::flash
