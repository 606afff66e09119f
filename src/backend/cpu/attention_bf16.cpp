// bf16 attention: the flash loops (attention_flash.h) with every tile product a bf16 x bf16 GEMM
// accumulated in f32, as FlashAttention does in bf16 on a GPU: the scores S = Q K^T and dP = dO V^T
// from bf16 q, k, v, dO; the probabilities P and dS rounded to bf16 for P V, P^T dO, dS K and
// dS^T Q. The softmax, its statistics (max, sum, lse, D) and the accumulators stay f32.
//
// The products run on one pair-packed kernel (pair_gemm.h), the packing is attention_pack.h's:
// the forward packs every head's K (for Q K^T) and V (for P V) per key block once,
// before its loop; the backward packs Q and dO per head (for dK and dV) and K, V per key block.
#include "backend/cpu/attention_bf16.h"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "backend/cpu/attention_pack.h"
#include "backend/cpu/pair_gemm.h"
#include "backend/cpu/transpose.h"
#include "core/error.h"

namespace cs::cpu {

namespace {
using flash::kBk;
using flash::kBq;

int64_t round16(int64_t n) { return (n + 15) / 16 * 16; }

// On a diagonal tile (its queries and keys the same positions) the causal mask zeroes the upper
// triangle: the products skip what it makes unnecessary (the scores past the diagonal, the
// reduction over P's or dS's zeros). dV^T and dK^T reduce over the query rows per key column and
// take no shortcut.
Tri diagonal(int64_t i0, int64_t j0, Tri what) { return i0 == j0 ? what : Tri::None; }


// The bf16 tile math of the flash loops. The backward keeps dK and dV of the current key block
// transposed (hd x kBk, f32) so that all three gradient products take their left operand as
// plain rows: dV^T += dO^T P and dK^T += Q^T dS (dO^T, Q^T: the head's rows transposed once, in
// bf16), dQ += dS K; P and dS are packed with their rows paired, no tile is transposed.
struct Bf16Math {
  const Bf16 *q, *k, *v, *dout;
  int64_t t_len, hd, hdn, nkb;
  const Bf16 *kpack = nullptr, *vpack = nullptr;  // forward: [bh][key block] K as B^T and V as B

  struct Local {
    const Bf16Math& m;
    const Bf16 *qh = nullptr, *kh = nullptr, *vh = nullptr, *doh = nullptr;
    const Bf16 *kp = nullptr, *vp = nullptr;  // forward: this head's packs
    bool backward = false;
    int64_t tpad = 0;
    std::vector<Bf16>& knk;  // backward: the key block's K and V as B^T (S, dP), K as B (dQ)
    std::vector<Bf16>& vnk;
    std::vector<Bf16>& kkn;
    std::vector<Bf16>& qt;  // backward: the head's Q^T and dO^T (hd x tpad)
    std::vector<Bf16>& dot;
    std::vector<Bf16>& a1;  // bf16 tiles: P (forward, backward: rows paired), dS rows, dS rows paired
    std::vector<Bf16>& a2;
    std::vector<Bf16>& a3;
    std::vector<float>& dkt;  // backward: the key block's dK^T and dV^T (hd x kBk)
    std::vector<float>& dvt;

    template <typename E>
    static std::vector<E>& buf(int i) {
      thread_local std::vector<E> bufs[8];
      return bufs[i];
    }
    explicit Local(const Bf16Math& math)
        : m(math), knk(buf<Bf16>(0)), vnk(buf<Bf16>(1)), kkn(buf<Bf16>(2)), qt(buf<Bf16>(3)), dot(buf<Bf16>(4)),
          a1(buf<Bf16>(5)), a2(buf<Bf16>(6)), a3(buf<Bf16>(7)), dkt(buf<float>(0)), dvt(buf<float>(1)) {
      for (std::vector<Bf16>* a : {&a1, &a2, &a3}) a->resize(size_t(kBq * kBk));
    }
    void head(int64_t bh, bool bwd) {
      backward = bwd;
      const int64_t off = bh * m.t_len * m.hd;
      qh = m.q + off, kh = m.k + off, vh = m.v + off;
      if (!backward) {
        kp = m.kpack + bh * m.nkb * m.hd * kBk;
        vp = m.vpack + bh * m.nkb * kBk * m.hdn;
        return;
      }
      doh = m.dout + off;
      tpad = m.t_len + (m.t_len & 1);
      qt.resize(size_t(m.hd * tpad));
      dot.resize(size_t(m.hd * tpad));
      transpose_head(qh, m.t_len, m.hd, tpad, qt.data());
      transpose_head(doh, m.t_len, m.hd, tpad, dot.data());
      knk.resize(size_t(m.hd * kBk));
      vnk.resize(size_t(m.hd * kBk));
      kkn.resize(size_t(kBk * m.hdn));
      dkt.resize(size_t(m.hd * kBk));
      dvt.resize(size_t(m.hd * kBk));
    }
    void scores(int64_t i0, int64_t rows, int64_t j0, int64_t cols, float* s) const {
      const Bf16* b = backward ? knk.data() : kp + (j0 / kBk) * m.hd * kBk;
      gemm_bf16_pairs(rows, cols, m.hd / 2, qh + i0 * m.hd, m.hd, b, kBk, s, kBk, false, diagonal(i0, j0, Tri::Columns));
    }
    const Bf16* softmax(float* s, const flash::TileArgs& t, float* mx, float* l, float* corr) const {
      flash::softmax_tile(s, t, mx, l, corr, a1.data());
      return a1.data();
    }
    void add_pv(const Bf16* p, int64_t i0, int64_t rows, int64_t j0, int64_t cols, float* acc) const {
      gemm_bf16_pairs(rows, m.hd, (cols + 1) / 2, p, kBk, vp + (j0 / kBk) * kBk * m.hdn, m.hdn, acc, m.hd, true,
                      diagonal(i0, j0, Tri::Reduction));
    }
    void key_block(int64_t j0, int64_t cols, float*, float*) const {
      pack_nk(kh + j0 * m.hd, m.hd, cols, m.hd, kBk, knk.data());
      pack_nk(vh + j0 * m.hd, m.hd, cols, m.hd, kBk, vnk.data());
      pack_kn(kh + j0 * m.hd, m.hd, cols, m.hd, m.hdn, kkn.data());
      std::fill(dkt.begin(), dkt.end(), 0.f);
      std::fill(dvt.begin(), dvt.end(), 0.f);
    }
    void dp(int64_t i0, int64_t rows, int64_t j0, int64_t cols, float* d) const {
      gemm_bf16_pairs(rows, cols, m.hd / 2, doh + i0 * m.hd, m.hd, vnk.data(), kBk, d, kBk, false,
                      diagonal(i0, j0, Tri::Columns));
    }
    void grads(float* s, float* dp, const flash::TileArgs& t, const float* lse, const float* dvec, float* dq,
               float*, float*) const {
      const int64_t hd = m.hd, i0 = t.i0, rows = t.rows, cols = t.cols, rp = (rows + 1) / 2;
      flash::p_ds_tile(s, dp, t, lse, dvec, a1.data(), a2.data(), a3.data());  // P paired, dS, dS paired
      gemm_bf16_pairs(hd, cols, rp, dot.data() + i0, tpad, a1.data(), kBk, dvt.data(), kBk, true);  // dV^T += dO^T P
      gemm_bf16_pairs(rows, hd, (cols + 1) / 2, a2.data(), kBk, kkn.data(), m.hdn, dq + i0 * hd, hd, true,
                      diagonal(i0, t.j0, Tri::Reduction));  // dQ += dS K
      gemm_bf16_pairs(hd, cols, rp, qt.data() + i0, tpad, a3.data(), kBk, dkt.data(), kBk, true);   // dK^T += Q^T dS
    }
    void end_key_block(int64_t j0, int64_t cols, float* dk, float* dv) const {  // every row of dk, dv
      transpose32(dkt.data(), kBk, m.hd, cols, dk + j0 * m.hd, m.hd);
      transpose32(dvt.data(), kBk, m.hd, cols, dv + j0 * m.hd, m.hd);
    }
  };
};

void check_head_dim(int64_t hd) {
  if (hd % 2)
    throw Error(fmt::format("[attention] bf16 attention multiplies pairs of head-dim elements: expected an even "
                            "head dim, got {}. Hint: train this model without --bf16", hd));
}
}  // namespace

void attention_forward_bf16(const flash::Dims& dm, const Bf16* q, const Bf16* k, const Bf16* v, const float* slopes,
                            const int32_t* starts, Bf16* o, float* lse) {
  check_head_dim(dm.hd);
  const int64_t hd = dm.hd, hdn = round16(hd), nkb = (dm.t + kBk - 1) / kBk, heads = dm.b * dm.h;
  // Every head's K and V, packed per key block, in the calling thread's scratch.
  thread_local std::vector<Bf16> kpack, vpack;
  kpack.resize(size_t(heads * nkb * hd * kBk));
  vpack.resize(size_t(heads * nkb * kBk * hdn));
  Bf16 *kp = kpack.data(), *vp = vpack.data();  // (the workers' own thread_locals are other vectors)
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t bh = 0; bh < heads; ++bh)
    for (int64_t kb = 0; kb < nkb; ++kb) {
      const int64_t j0 = kb * kBk, cols = std::min(kBk, dm.t - j0), blk = bh * nkb + kb;
      pack_nk(k + (bh * dm.t + j0) * hd, hd, cols, hd, kBk, kp + blk * hd * kBk);
      pack_kn(v + (bh * dm.t + j0) * hd, hd, cols, hd, hdn, vp + blk * kBk * hdn);
    }
  const Bf16Math math{q, k, v, nullptr, dm.t, hd, hdn, nkb, kp, vp};
  flash::forward(dm, math, slopes, starts, o, lse);
}

void attention_backward_bf16(const flash::Dims& dm, const Bf16* q, const Bf16* k, const Bf16* v,
                             const float* slopes, const int32_t* starts, const Bf16* o, const float* lse,
                             const Bf16* dout, float* dq, float* dk, float* dv) {
  check_head_dim(dm.hd);
  const Bf16Math math{q, k, v, dout, dm.t, dm.hd, round16(dm.hd), (dm.t + kBk - 1) / kBk};
  flash::backward(dm, math, slopes, starts, o, lse, dout, dq, dk, dv);
}

}  // namespace cs::cpu
