// Baichuan self-attention block: qkv = x W_pack^T (rows q | k | v), heads split, RoPE on q and k
// (7B) or ALiBi slopes in the scores (13B), causal softmax attention, heads merged, o_proj.
// Legend: N = B*T rows; D hidden; H heads; Hd head dim. x, y, dy, dx: (N, D).
#include "model/layer.h"

namespace cs {

namespace {
Tensor heads(float* p, const Dims& d) { return Tensor(p, {d.b, d.h, d.t, d.hd}); }
Tensor rows(float* p, const Dims& d, int64_t cols) { return Tensor(p, {d.n(), cols}); }
Tensor btc(float* p, const Dims& d, int64_t cols) { return Tensor(p, {d.b, d.t, cols}); }
}  // namespace

void attention_block_forward(const LayerCtx& c, const LayerWeights& w, const Tensor& x, Tensor& y,
                             const LayerSaved& s) {
  const Dims& d = c.dims;
  Tensor qkv = rows(s.qkv, d, 3 * d.d);
  c.ops.matmul(x, false, w.wpack, true, qkv, 1.f, 0.f);
  Tensor q = heads(s.q, d), k = heads(s.k, d), v = heads(s.v, d);
  Tensor qkv3 = btc(s.qkv, d, 3 * d.d);
  c.ops.split_heads(qkv3, 0, q);
  c.ops.split_heads(qkv3, d.d, k);
  c.ops.split_heads(qkv3, 2 * d.d, v);
  if (c.cfg.position == PositionType::Rope) {
    c.ops.rope_apply(q, float(c.cfg.rope_base), 0, false);
    c.ops.rope_apply(k, float(c.cfg.rope_base), 0, false);
  }
  Tensor att = heads(s.att, d), lse(s.lse, {d.b, d.h, d.t});
  c.ops.attention_forward(q, k, v, c.slopes, att, lse);
  Tensor attm = btc(s.attm, d, d.d);
  c.ops.merge_heads(att, attm, 0);
  c.ops.matmul(rows(s.attm, d, d.d), false, w.wo, true, y, 1.f, 0.f);
}

void attention_block_backward(const LayerCtx& c, const LayerWeights& w, const LayerWeights& g,
                              const LayerSaved& s, const Tensor& x, const Tensor& dy, Tensor& dx,
                              const LayerScratch& k) {
  const Dims& d = c.dims;
  // y = attm Wo^T: dWo += dy^T attm; dattm = dy Wo.
  Tensor wo_g = g.wo;
  c.ops.matmul(dy, true, rows(s.attm, d, d.d), false, wo_g, 1.f, 1.f);
  Tensor dattm = rows(k.dattm, d, d.d);
  c.ops.matmul(dy, false, w.wo, false, dattm, 1.f, 0.f);
  Tensor datt = heads(k.datt, d);
  c.ops.split_heads(btc(k.dattm, d, d.d), 0, datt);
  Tensor dq = heads(k.dq, d), dk = heads(k.dk, d), dv = heads(k.dv, d);
  c.ops.attention_backward(heads(s.q, d), heads(s.k, d), heads(s.v, d), c.slopes, heads(s.att, d),
                           Tensor(s.lse, {d.b, d.h, d.t}), datt, dq, dk, dv);
  if (c.cfg.position == PositionType::Rope) {
    c.ops.rope_apply(dq, float(c.cfg.rope_base), 0, true);
    c.ops.rope_apply(dk, float(c.cfg.rope_base), 0, true);
  }
  Tensor dqkv3 = btc(k.dqkv, d, 3 * d.d);
  c.ops.merge_heads(dq, dqkv3, 0);
  c.ops.merge_heads(dk, dqkv3, d.d);
  c.ops.merge_heads(dv, dqkv3, 2 * d.d);
  // qkv = x Wpack^T: dWpack += dqkv^T x; dx = dqkv Wpack.
  Tensor dqkv = rows(k.dqkv, d, 3 * d.d), wpack_g = g.wpack;
  c.ops.matmul(dqkv, true, x, false, wpack_g, 1.f, 1.f);
  c.ops.matmul(dqkv, false, w.wpack, false, dx, 1.f, 0.f);
}

}  // namespace cs
