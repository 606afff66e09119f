// Decoder layer (pre-norm): h = x + attn(ln1(x)); out = h + mlp(ln2(h)). The model's end (final
// norm and logits) sits here too, so training and decoding share it.
// Backward runs the residual stream in place: dres enters as d out and leaves as d x. x, out,
// dres: (Ns, D) (see layer.h on tensor and sequence parallelism).
#include "model/layer.h"

namespace cs {

void decoder_layer_forward(const LayerCtx& c, const LayerWeights& w, const Tensor& x, const Tensor& out,
                           const LayerSaved& s, KvCache* cache) {
  norm_for_column_parallel(c, x, w.ln1, s.rstd1, s.ln1);
  attention_block_forward(c, w, s.ln1, s.h, s, cache);
  c.ops.add_inplace(c.ex, s.h, x);
  norm_for_column_parallel(c, s.h, w.ln2, s.rstd2, s.ln2);
  mlp_block_forward(c, w, s.ln2, out, s);
  c.ops.add_inplace(c.ex, out, s.h);
}

void decoder_layer_backward(const LayerCtx& c, const LayerWeights& w, const LayerWeights& g,
                            const LayerSaved& s, const Tensor& x, const Tensor& dres,
                            const LayerScratch& k) {
  mlp_block_backward(c, w, g, s, s.ln2, dres, k.dln, k);
  c.ops.rmsnorm_backward(c.ex, s.h, w.ln2, s.rstd2, column_parallel_input_grad(c, k.dln), dres, g.ln2, true);
  attention_block_backward(c, w, g, s, s.ln1, dres, k.dln, k);
  c.ops.rmsnorm_backward(c.ex, x, w.ln1, s.rstd1, column_parallel_input_grad(c, k.dln), dres, g.ln1, true);
}

void head_forward(const LayerCtx& c, const Tensor& norm_w, const Tensor& head_w, const Tensor& x,
                  const Tensor& lnf, const Tensor& rstd, const Tensor& logits) {
  norm_for_column_parallel(c, x, norm_w, rstd, lnf);
  c.ops.matmul(c.ex, lnf, false, head_w, true, logits, 1.f, 0.f);
}

}  // namespace cs
