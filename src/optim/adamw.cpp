#include "optim/adamw.h"

#include <fmt/core.h>

namespace cs {

AdamW::AdamW(const ParamStore& params, const AdamWConfig& cfg, Ctx& ctx)
    : cfg_(cfg), ctx_(ctx), numel_(params.numel()), separate_master_(params.param_dtype() != DType::F32) {
  if (params.grad_dtype() != DType::F32)
    throw Error(fmt::format("[adamw] gradients in {}: expected f32 gradients", dtype_name(params.grad_dtype())));
  m_ = DeviceBuffer(ctx.backend, size_t(numel_) * 4);
  v_ = DeviceBuffer(ctx.backend, size_t(numel_) * 4);
  if (separate_master_) {
    master_ = DeviceBuffer(ctx.backend, size_t(numel_) * 4);
    load_master(params);
  }
}

Tensor AdamW::master(const ParamStore& params) const {
  return separate_master_ ? master_.tensor({numel_}) : params.flat_params();
}

void AdamW::load_master(const ParamStore& params) {
  if (separate_master_) ctx_.ops.cast(ctx_, params.flat_params(), master_.tensor({numel_}));
}

void AdamW::step(ParamStore& params, double lr) {
  ++step_;
  const Tensor master = this->master(params);
  for (const ParamSpec& s : params.specs()) {
    const Tensor p = master.slice_rows(s.offset, s.offset + s.shape.numel());
    const Tensor m = exp_avg().slice_rows(s.offset, s.offset + s.shape.numel());
    const Tensor v = exp_avg_sq().slice_rows(s.offset, s.offset + s.shape.numel());
    ctx_.ops.adamw_update(ctx_, p, params.grad(s).view({s.shape.numel()}), m, v, lr, cfg_.beta1, cfg_.beta2,
                          cfg_.eps, s.is_norm ? 0.0 : cfg_.weight_decay, step_);
  }
  if (separate_master_) ctx_.ops.cast(ctx_, master, params.flat_params());
}

}  // namespace cs
