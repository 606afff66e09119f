// Decoder layer (pre-norm): h = x + attn(ln1(x)); out = h + mlp(ln2(h)).
// Backward runs the residual stream in place: dres enters as d out and leaves as d x.
#include "model/layer.h"

namespace cs {

void decoder_layer_forward(const LayerCtx& c, const LayerWeights& w, const Tensor& x, Tensor& out,
                           const LayerSaved& s) {
  const Dims& d = c.dims;
  const float eps = float(c.cfg.rms_norm_eps);
  Tensor ln1(s.ln1, {d.n(), d.d}), rstd1(s.rstd1, {d.n()}), h(s.h, {d.n(), d.d});
  c.ops.rmsnorm_forward(x, w.ln1, eps, ln1, rstd1);
  attention_block_forward(c, w, ln1, h, s);
  c.ops.add_inplace(h, x);
  Tensor ln2(s.ln2, {d.n(), d.d}), rstd2(s.rstd2, {d.n()});
  c.ops.rmsnorm_forward(h, w.ln2, eps, ln2, rstd2);
  mlp_block_forward(c, w, ln2, out, s);
  c.ops.add_inplace(out, h);
}

void decoder_layer_backward(const LayerCtx& c, const LayerWeights& w, const LayerWeights& g,
                            const LayerSaved& s, const Tensor& x, Tensor& dres,
                            const LayerScratch& k) {
  const Dims& d = c.dims;
  Tensor dln(k.dln, {d.n(), d.d});
  Tensor ln2(s.ln2, {d.n(), d.d}), h(s.h, {d.n(), d.d}), ln1(s.ln1, {d.n(), d.d});
  Tensor ln2_g = g.ln2, ln1_g = g.ln1;
  mlp_block_backward(c, w, g, s, ln2, dres, dln, k);
  c.ops.rmsnorm_backward(h, w.ln2, Tensor(s.rstd2, {d.n()}), dln, dres, ln2_g, true);
  attention_block_backward(c, w, g, s, ln1, dres, dln, k);
  c.ops.rmsnorm_backward(x, w.ln1, Tensor(s.rstd1, {d.n()}), dln, dres, ln1_g, true);
}

}  // namespace cs
