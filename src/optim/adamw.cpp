#include "optim/adamw.h"

#include <fmt/core.h>

#include <algorithm>

namespace cs {

AdamW::AdamW(const ParamStore& params, const AdamWConfig& cfg, Ctx& ctx, Group* shard_over)
    : cfg_(cfg), ctx_(ctx), group_(shard_over && shard_over->size() > 1 ? shard_over : nullptr),
      numel_(params.numel()), separate_master_(params.param_dtype() != DType::F32) {
  if (params.grad_dtype() != DType::F32)
    throw Error(fmt::format("[adamw] gradients in {}: expected f32 gradients", dtype_name(params.grad_dtype())));
  size_ = numel_;
  if (group_) {
    CS_CHECK(params.padded_numel() % group_->size() == 0)
        << "pad the parameters to a multiple of " << group_->size() << " first";
    size_ = params.padded_numel() / group_->size();
    begin_ = size_ * group_->rank();
  }
  m_ = DeviceBuffer(ctx.backend, size_t(size_) * 4);
  v_ = DeviceBuffer(ctx.backend, size_t(size_) * 4);
  if (separate_master_) {
    master_ = DeviceBuffer(ctx.backend, size_t(size_) * 4);
    load_master(params);
  }
}

Tensor AdamW::master_shard(const ParamStore& params) const {
  if (separate_master_) return master_.tensor({size_});
  return (group_ ? params.padded_params() : params.flat_params()).slice_rows(begin_, begin_ + size_);
}

Tensor AdamW::shard_grads(const ParamStore& params) const {
  return (group_ ? params.padded_grads() : params.flat_grads()).slice_rows(begin_, begin_ + size_);
}

void AdamW::load_master(const ParamStore& params) {
  if (!separate_master_) return;
  const Tensor all = group_ ? params.padded_params() : params.flat_params();
  ctx_.ops.cast(ctx_, all.slice_rows(begin_, begin_ + size_), master_.tensor({size_}));
}

void AdamW::step(ParamStore& params, double lr, float grad_scale) {
  ++step_;
  const Tensor master = master_shard(params), grads = shard_grads(params);
  const Tensor m = moment(m_), v = moment(v_);
  const int64_t end = begin_ + size_;
  const Tensor all = group_ ? params.padded_params() : params.flat_params();
  // bf16 parameters are written by the update itself (one pass); other half dtypes are cast after.
  const bool fused = separate_master_ && params.param_dtype() == DType::BF16;
  const Tensor none{nullptr, {0}, DType::BF16};
  // Each parameter's part inside this rank's range, with its own weight decay. (Padding past the
  // last parameter stays zero in both copies.)
  for (const ParamSpec& s : params.specs()) {
    const int64_t lo = std::max(begin_, s.offset), hi = std::min(end, s.offset + s.shape.numel());
    if (lo >= hi) continue;
    const int64_t a = lo - begin_, b = hi - begin_;
    ctx_.ops.adamw_update(ctx_, master.slice_rows(a, b), grads.slice_rows(a, b), m.slice_rows(a, b),
                          v.slice_rows(a, b), lr, cfg_.beta1, cfg_.beta2, cfg_.eps,
                          s.is_norm ? 0.0 : cfg_.weight_decay, step_, grad_scale, fused ? all.slice_rows(lo, hi) : none);
  }
  if (separate_master_ && !fused) ctx_.ops.cast(ctx_, master, all.slice_rows(begin_, end));
  if (group_) group_->all_gather(ctx_, all.slice_rows(begin_, end), all);  // in place: every rank's shard
}

AdamW::State AdamW::full_for_loading(const ParamStore& params) {
  const int64_t n = numel_;
  if (!group_)
    return {separate_master_ ? master_.tensor({n}) : params.flat_params(), moment(m_), moment(v_)};
  const int64_t padded = params.padded_numel();
  if (full_.bytes() == 0) full_ = DeviceBuffer(ctx_.backend, size_t(3 * padded) * 4);
  const Tensor f = full_.tensor({3 * padded});
  return {f.slice_rows(0, n), f.slice_rows(padded, padded + n), f.slice_rows(2 * padded, 2 * padded + n)};
}

void AdamW::load_full(const ParamStore& params) {
  if (!group_) return;
  const int64_t padded = params.padded_numel(), end = begin_ + size_;
  const Tensor f = full_.tensor({3 * padded});
  ctx_.backend.copy(ctx_, f.slice_rows(padded + begin_, padded + end), moment(m_));
  ctx_.backend.copy(ctx_, f.slice_rows(2 * padded + begin_, 2 * padded + end), moment(v_));
  if (separate_master_) ctx_.backend.copy(ctx_, f.slice_rows(begin_, end), master_.tensor({size_}));
}

AdamW::State AdamW::gather(const ParamStore& params) {
  if (!group_) return full_for_loading(params);
  const State full = full_for_loading(params);
  const int64_t padded = params.padded_numel();
  const Tensor f = full_.tensor({3 * padded});
  const Tensor master_all = f.slice_rows(0, padded), m_all = f.slice_rows(padded, 2 * padded),
               v_all = f.slice_rows(2 * padded, 3 * padded);
  group_->all_gather(ctx_, moment(m_), m_all);
  group_->all_gather(ctx_, moment(v_), v_all);
  if (separate_master_)
    group_->all_gather(ctx_, master_.tensor({size_}), master_all);
  else  // the parameters are the master weights, already whole on every rank
    return {params.flat_params(), full.exp_avg, full.exp_avg_sq};
  return full;
}

}  // namespace cs
