// Baichuan MLP block: y = down_proj(silu(gate_proj x) * up_proj x). gate_proj and up_proj sit
// next to each other in the parameter buffer, so one GEMM with the (2F, D) view makes both.
// x, dx: (N, D); y, dy: (Ns, D); gu: (N, 2F); act: (N, F) (F: this rank's share; layer.h).
#include "model/layer.h"

namespace cs {

void mlp_block_forward(const LayerCtx& c, const LayerWeights& w, const Tensor& x, const Tensor& y,
                       const LayerSaved& s) {
  c.ops.matmul(c.ex, x, false, w.wgu, true, s.gu, 1.f, 0.f);
  c.ops.swiglu_forward(c.ex, s.gu, s.act);
  const Tensor partial = row_parallel_partial(c, y);
  c.ops.matmul(c.ex, s.act, false, w.wdown, true, partial, 1.f, 0.f);
  reduce_row_parallel(c, partial, y);
}

void mlp_block_backward(const LayerCtx& c, const LayerWeights& w, const LayerWeights& g,
                        const LayerSaved& s, const Tensor& x, const Tensor& dy, const Tensor& dx,
                        const LayerScratch& k) {
  const Tensor dyf = row_parallel_grad_for_gemms(c, dy, k.dgu);  // dgu is free until swiglu_backward
  c.ops.matmul(c.ex, dyf, true, s.act, false, g.wdown, 1.f, c.weight_grad_beta);  // dWdown (+)= dy^T act
  c.ops.matmul(c.ex, dyf, false, w.wdown, false, k.dact, 1.f, 0.f);  // dact = dy Wdown
  c.ops.swiglu_backward(c.ex, s.gu, k.dact, k.dgu);
  c.ops.matmul(c.ex, k.dgu, true, x, false, g.wgu, 1.f, c.weight_grad_beta);  // d[gate; up] (+)= dgu^T x
  c.ops.matmul(c.ex, k.dgu, false, w.wgu, false, dx, 1.f, 0.f);  // dx = dgu [Wgate; Wup]
}

}  // namespace cs
