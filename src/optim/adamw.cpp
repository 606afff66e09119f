#include "optim/adamw.h"

namespace cs {

AdamW::AdamW(const ParamStore& params, const AdamWConfig& cfg, const Ops& ops)
    : cfg_(cfg), ops_(ops), numel_(params.numel()) {
  m_.resize(size_t(numel_) * 4);
  v_.resize(size_t(numel_) * 4);
}

void AdamW::step(ParamStore& params, double lr) {
  ++step_;
  for (const ParamSpec& s : params.specs()) {
    Tensor p = params.param(s), g = params.grad(s);
    Tensor m(m_.f32() + s.offset, s.shape), v(v_.f32() + s.offset, s.shape);
    ops_.adamw_update(p, g, m, v, lr, cfg_.beta1, cfg_.beta2, cfg_.eps,
                      s.is_norm ? 0.0 : cfg_.weight_decay, step_);
  }
}

}  // namespace cs
