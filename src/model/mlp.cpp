// Baichuan MLP block: y = down_proj(silu(gate_proj x) * up_proj x). gate_proj and up_proj sit
// next to each other in the parameter buffer, so one GEMM with the (2F, D) view makes both.
// x, y, dy, dx: (N, D); gu: (N, 2F); act: (N, F).
#include "model/layer.h"

namespace cs {

void mlp_block_forward(const LayerCtx& c, const LayerWeights& w, const Tensor& x, Tensor& y,
                       const LayerSaved& s) {
  const Dims& d = c.dims;
  Tensor gu(s.gu, {d.n(), 2 * d.f}), act(s.act, {d.n(), d.f});
  c.ops.matmul(x, false, w.wgu, true, gu, 1.f, 0.f);
  c.ops.swiglu_forward(gu, act);
  c.ops.matmul(act, false, w.wdown, true, y, 1.f, 0.f);
}

void mlp_block_backward(const LayerCtx& c, const LayerWeights& w, const LayerWeights& g,
                        const LayerSaved& s, const Tensor& x, const Tensor& dy, Tensor& dx,
                        const LayerScratch& k) {
  const Dims& d = c.dims;
  Tensor act(s.act, {d.n(), d.f}), dact(k.dact, {d.n(), d.f});
  Tensor gu(s.gu, {d.n(), 2 * d.f}), dgu(k.dgu, {d.n(), 2 * d.f});
  Tensor wdown_g = g.wdown, wgu_g = g.wgu;
  c.ops.matmul(dy, true, act, false, wdown_g, 1.f, 1.f);  // dWdown += dy^T act
  c.ops.matmul(dy, false, w.wdown, false, dact, 1.f, 0.f);  // dact = dy Wdown
  c.ops.swiglu_backward(gu, dact, dgu);
  c.ops.matmul(dgu, true, x, false, wgu_g, 1.f, 1.f);  // d[gate; up] += dgu^T x
  c.ops.matmul(dgu, false, w.wgu, false, dx, 1.f, 0.f);  // dx = dgu [Wgate; Wup]
}

}  // namespace cs
