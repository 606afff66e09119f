// Baichuan self-attention block: qkv = x W_pack^T (rows q | k | v, this rank's heads), heads
// split, RoPE on q and k (7B) or ALiBi slopes in the scores (13B), causal softmax attention, heads
// merged, o_proj. Packed sequences (LayerCtx segments/positions) restart positions and attention
// at every sample. Training attends within the sequence; decoding (a KvCache) appends k and v to
// the cache and attends over every cached position, with the same scores.
// Legend: N = B*T rows; D hidden; H heads; Hd head dim; A = H*Hd. x, dx: (N, D); y, dy: (Ns, D)
// (layer.h: tensor and sequence parallelism).
#include "model/layer.h"

namespace cs {

namespace {
Tensor btc(const Tensor& rows, const Dims& d) {  // (N, C) seen as (B, T, C)
  return rows.view({d.b, d.t, rows.size(1)});
}
}  // namespace

void attention_block_forward(const LayerCtx& c, const LayerWeights& w, const Tensor& x, const Tensor& y,
                             const LayerSaved& s, KvCache* cache) {
  const Dims& d = c.dims;
  const int64_t a = d.w.attention(), pos0 = cache ? cache->len : 0;
  c.ops.matmul(c.ex, x, false, w.wpack, true, s.qkv, 1.f, 0.f);
  const Tensor qkv3 = btc(s.qkv, d);
  c.ops.split_heads(c.ex, qkv3, 0, s.q);
  c.ops.split_heads(c.ex, qkv3, a, s.k);
  c.ops.split_heads(c.ex, qkv3, 2 * a, s.v);
  if (c.cfg.position == PositionType::Rope) {
    c.ops.rope_apply(c.ex, s.q, float(c.cfg.rope_base), pos0, c.positions, false);
    c.ops.rope_apply(c.ex, s.k, float(c.cfg.rope_base), pos0, c.positions, false);
  }
  if (cache) {
    c.ops.kv_append(c.ex, s.k, cache->k, pos0);
    c.ops.kv_append(c.ex, s.v, cache->v, pos0);
    c.ops.attention_decode(c.ex, s.q, cache->k, cache->v, pos0 + d.t, c.slopes, s.att);
  } else {
    c.ops.attention_forward(c.ex, s.q, s.k, s.v, c.slopes, c.segments, s.att, s.lse);
  }
  c.ops.merge_heads(c.ex, s.att, btc(s.attm, d), 0);
  const Tensor partial = row_parallel_partial(c, y);
  c.ops.matmul(c.ex, s.attm, false, w.wo, true, partial, 1.f, 0.f);
  reduce_row_parallel(c, partial, y);
}

void attention_block_backward(const LayerCtx& c, const LayerWeights& w, const LayerWeights& g,
                              const LayerSaved& s, const Tensor& x, const Tensor& dy, const Tensor& dx,
                              const LayerScratch& k) {
  const Dims& d = c.dims;
  const int64_t a = d.w.attention();
  // y = attm Wo^T: dWo (+)= dy^T attm; dattm = dy Wo (dqkv is free until the heads merge into it).
  const Tensor dyf = row_parallel_grad_for_gemms(c, dy, k.dqkv);
  c.ops.matmul(c.ex, dyf, true, s.attm, false, g.wo, 1.f, c.weight_grad_beta);
  c.ops.matmul(c.ex, dyf, false, w.wo, false, k.dattm, 1.f, 0.f);
  c.ops.split_heads(c.ex, btc(k.dattm, d), 0, k.datt);
  c.ops.attention_backward(c.ex, s.q, s.k, s.v, c.slopes, c.segments, s.att, s.lse, k.datt, k.dq, k.dk, k.dv);
  if (c.cfg.position == PositionType::Rope) {
    c.ops.rope_apply(c.ex, k.dq, float(c.cfg.rope_base), 0, c.positions, true);
    c.ops.rope_apply(c.ex, k.dk, float(c.cfg.rope_base), 0, c.positions, true);
  }
  const Tensor dqkv3 = btc(k.dqkv, d);
  c.ops.merge_heads(c.ex, k.dq, dqkv3, 0);
  c.ops.merge_heads(c.ex, k.dk, dqkv3, a);
  c.ops.merge_heads(c.ex, k.dv, dqkv3, 2 * a);
  // qkv = x Wpack^T: dWpack (+)= dqkv^T x; dx = dqkv Wpack.
  c.ops.matmul(c.ex, k.dqkv, true, x, false, g.wpack, 1.f, c.weight_grad_beta);
  c.ops.matmul(c.ex, k.dqkv, false, w.wpack, false, dx, 1.f, 0.f);
}

}  // namespace cs
