// The decoder layer and its two blocks, as free forward/backward function pairs (llm.c style):
// no tape; the model calls backwards in the exact reverse order of forwards.
// Legend: B batch, T sequence, D hidden, H heads, Hd head dim, F ffn, V vocab, N = B*T.
#pragma once
#include "backend/backend.h"
#include "model/config.h"
#include "model/params.h"

namespace cs {

struct Dims {
  int64_t b, t, d, h, hd, f, v;
  int64_t n() const { return b * t; }
};

// What a layer's backward needs (sized for the planned maximum B, T; viewed at the current ones).
struct LayerSaved {
  float *ln1, *rstd1, *qkv, *q, *k, *v, *att, *lse, *attm, *h, *ln2, *rstd2, *gu, *act;
  // Floats one set needs for n = B*T rows.
  static int64_t floats(const Dims& d);
  // Carves one set out of p (floats(d) floats).
  static LayerSaved carve(float* p, const Dims& d);
};

// Backward work buffers, one set shared by all layers.
struct LayerScratch {
  float *dln, *dqkv, *dq, *dk, *dv, *datt, *dattm, *dgu, *dact;
  static int64_t floats(const Dims& d);
  static LayerScratch carve(float* p, const Dims& d);
};

struct LayerCtx {
  const Ops& ops;
  const ModelConfig& cfg;
  Dims dims;
  Tensor slopes;  // (H) ALiBi slopes, or empty for RoPE
};

// Attention block. x: (N, D) normed input; y: (N, D) = o_proj(attention(W_pack x)).
void attention_block_forward(const LayerCtx& c, const LayerWeights& w, const Tensor& x, Tensor& y,
                             const LayerSaved& s);
// dy: (N, D) in; dx: (N, D) overwritten; grads of W_pack and o_proj accumulate.
void attention_block_backward(const LayerCtx& c, const LayerWeights& w, const LayerWeights& g,
                              const LayerSaved& s, const Tensor& x, const Tensor& dy, Tensor& dx,
                              const LayerScratch& k);

// MLP block. x: (N, D) normed input; y: (N, D) = down(silu(gate x) * up x).
void mlp_block_forward(const LayerCtx& c, const LayerWeights& w, const Tensor& x, Tensor& y,
                       const LayerSaved& s);
void mlp_block_backward(const LayerCtx& c, const LayerWeights& w, const LayerWeights& g,
                        const LayerSaved& s, const Tensor& x, const Tensor& dy, Tensor& dx,
                        const LayerScratch& k);

// Decoder layer: h = x + attn(ln1(x)); out = h + mlp(ln2(h)). x, out: (N, D).
void decoder_layer_forward(const LayerCtx& c, const LayerWeights& w, const Tensor& x, Tensor& out,
                           const LayerSaved& s);
// dres: (N, D) gradient of out in, gradient of x out (in place: the residual stream).
void decoder_layer_backward(const LayerCtx& c, const LayerWeights& w, const LayerWeights& g,
                            const LayerSaved& s, const Tensor& x, Tensor& dres,
                            const LayerScratch& k);

}  // namespace cs
