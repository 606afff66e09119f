#include "train/train_step.h"

#include <algorithm>
#include <cmath>

#include "optim/grad_clip.h"
#include "train/interleaved.h"
#include "train/pipeline.h"

namespace cs {

TrainStep::TrainStep(Model& model, AdamW& adam, LossScaler& scaler, Group& dp, int64_t global_micro,
                     double clip_grad, bool fp16, Group* pp, bool per_token_loss)
    : model_(model), adam_(adam), scaler_(scaler), dp_(dp), pp_(pp ? *pp : one_stage_), global_micro_(global_micro),
      local_micro_(global_micro / dp.size()), max_micro_(global_micro), clip_grad_(clip_grad), fp16_(fp16),
      per_token_(per_token_loss),
      slots_(model.ctx().backend, global_micro, 2, per_token_loss) {  // extra: squared norm, zero count
  CS_CHECK(global_micro % dp.size() == 0) << global_micro << " micro-batches over " << dp.size() << " ranks";
  // A sharded optimizer reduce-scatters the whole gradient after backward instead.
  if (dp_.size() > 1 && !adam_.sharded())
    model_.on_grads_ready([this](int layer) {
      if (reduce_now_) reduce_layer(layer);
    });
  const ParamStore& ps = model_.params();
  norm_ranges_ = adam_.sharded() ? norm_ranges(ps, adam_.shard_begin(), adam_.shard_begin() + adam_.shard_size())
                                 : norm_ranges(ps, 0, ps.numel());
  norm_parts_ = DeviceBuffer(model_.ctx().backend, std::max<size_t>(norm_ranges_.size(), 1) * sizeof(double));
  params_sq_ = DeviceBuffer(model_.ctx().backend, sizeof(double));
}

void TrainStep::set_global_micro(int64_t global_micro) {
  CS_CHECK(global_micro >= 1 && global_micro <= max_micro_ && global_micro % dp_.size() == 0)
      << global_micro << " micro-batches (at most " << max_micro_ << ") over " << dp_.size() << " ranks";
  global_micro_ = global_micro;
  local_micro_ = global_micro / dp_.size();
  slots_.set_active(global_micro);
}

void TrainStep::local_fold(const Tensor& flat, const Tensor& out, FoldOp fold) {
  grad_fold_local(model_.ctx(), flat, norm_ranges_,
                  norm_parts_.tensor({int64_t(norm_parts_.bytes() / sizeof(double))}, DType::F64), out, fold);
}

void TrainStep::sum_over_model(const Tensor& t) {
  Ctx& ctx = model_.ctx();
  if (adam_.sharded()) dp_.all_reduce_sum(ctx, t);
  model_.tp_group().all_reduce_sum(ctx, t);
  pp_.all_reduce_sum(ctx, t);
}

double TrainStep::params_norm() {
  Ctx& ctx = model_.ctx();
  const Tensor sq = params_sq_.tensor({1}, DType::F64);
  local_fold(adam_.master_shard(model_.params()), sq, ctx.ops.sum_squares);
  sum_over_model(sq);
  double v = 0;
  ctx.backend.download(ctx, sq, &v);
  return std::sqrt(v);
}

void TrainStep::reduce_layer(int layer) {
  const auto [begin, end] = model_.params().layer_range(layer);
  if (begin < end) dp_.all_reduce_sum(model_.ctx(), model_.params().flat_grads().slice_rows(begin, end));
}

StepOutcome TrainStep::run(const std::function<void(int64_t, MicroBatch&)>& fill, MicroBatch& batch, double lr,
                           const std::function<void(Tensor&)>& grad_hook) {
  Ctx& ctx = model_.ctx();
  StepOutcome out;
  out.loss_scale = scaler_.scale();
  model_.zero_grad();
  slots_.clear(ctx);
  counts_.assign(size_t(local_micro_), 0);
  // The global batch's counted targets, known before the first backward (the 1F1B schedule runs
  // backwards before the last forward): every rank counts every micro-batch from the data itself,
  // so no exchange is needed and every rank gets the same number.
  for (int64_t g = 0; per_token_ && g < global_micro_; ++g) {
    fill(g, batch);
    out.trained_tokens += batch.target_count();
  }
  auto forward = [&](int64_t mi, int64_t slot) {
    const int64_t g = mi * dp_.size() + dp_.rank();
    fill(g, batch);
    model_.forward(batch.tokens(), batch.targets(), batch.batch(), batch.seq_length(), slot, batch.segments(),
                   batch.positions());
    slots_.record(ctx, model_, g);
    counts_[size_t(mi)] = batch.target_count();
  };
  auto backward = [&](int64_t mi, int64_t slot) {
    reduce_now_ = mi + 1 == local_micro_;  // the gradients are summed once, after the last micro-batch
    // d(loss_scale * mean over the global batch's micro-batches of each one's mean loss), or
    // per token: d(loss_scale * sum of the global batch's token losses / its counted targets)
    const double denom = per_token_ ? double(out.trained_tokens) : double(counts_[size_t(mi)]) * double(global_micro_);
    model_.backward(denom > 0 ? float(out.loss_scale / denom) : 0.f, slot);
    reduce_now_ = false;
  };
  if (model_.chunks() > 1)  // an interleaved pipeline: several model chunks per stage
    run_interleaved(model_, pp_, local_micro_, batch.batch(), batch.seq_length(), forward, backward);
  else
    run_one_f_one_b(model_, pp_, local_micro_, batch.batch(), batch.seq_length(), forward, backward);
  slots_.reduce(ctx, dp_);
  slots_.reduce(ctx, pp_);  // the losses live on the last stage
  model_.reduce_sequence_parallel_grads();
  Tensor all = model_.params().flat_grads();
  if (grad_hook) grad_hook(all);
  // Sharded: this rank's shard of the summed gradients, reduce-scattered in place; the norm is
  // summed over the shards and the model-parallel ranks. Otherwise every data-parallel rank holds
  // the same summed gradients: the norm over the model-parallel ranks only.
  Tensor grads = all;
  if (adam_.sharded()) {
    grads = adam_.shard_grads(model_.params());
    dp_.reduce_scatter_sum(ctx, model_.params().padded_grads(), grads);
  }
  if (out.loss_scale != 1.0) ctx.ops.scale(ctx, grads, float(1.0 / out.loss_scale));
  local_fold(grads, slots_.extra(0), ctx.ops.sum_squares);
  if (count_zeros_) local_fold(grads, slots_.extra(1), ctx.ops.count_zeros);
  sum_over_model(slots_.extras(count_zeros_ ? 2 : 1));  // the norm and the count in one reduction
  slots_.read(ctx);  // the step's one host read
  out.loss = slots_.mean_loss();
  out.grad_norm = std::sqrt(slots_.extra_value(0));
  if (count_zeros_) out.num_zeros = slots_.extra_value(1);
  out.found_inf = !std::isfinite(out.grad_norm);
  if (fp16_ && out.found_inf) {
    out.skipped = true;
    out.nan = !std::isfinite(out.loss);  // Megatron counts a skipped iteration with a non-finite loss as nan
  } else if (out.found_inf || !std::isfinite(out.loss)) {
    out.nan = true;
  } else {
    // Clipping in the update's pass (Megatron scales the gradients, then steps: the same values).
    adam_.step(model_.params(), lr, clip_coefficient(out.grad_norm, clip_grad_));
    out.stepped = true;
  }
  scaler_.update(out.found_inf);
  out.next_loss_scale = scaler_.scale();
  return out;
}

}  // namespace cs
