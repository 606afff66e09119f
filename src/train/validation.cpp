#include "train/validation.h"

#include "train/interleaved.h"
#include "train/pipeline.h"

namespace cs {

Validator::Validator(Model& model, const SampleSource& data, Group& dp, int64_t global_micro, int64_t consumed,
                     Group* pp, bool per_token)
    : model_(model), data_(data), dp_(dp), pp_(pp ? *pp : one_stage_), global_micro_(global_micro),
      consumed_(consumed), slots_(model.ctx().backend, global_micro, 0, per_token) {}

double Validator::evaluate(MicroBatch& batch, const std::function<void()>& progress) {
  Ctx& ctx = model_.ctx();
  slots_.clear(ctx);
  const MicroStep forward = [&](int64_t mi, int64_t slot) {
    const int64_t g = mi * dp_.size() + dp_.rank();
    batch.fill(data_, consumed_ + g * batch.batch());
    model_.forward(batch.tokens(), batch.targets(), batch.batch(), batch.seq_length(), slot, batch.segments(),
                   batch.positions());
    slots_.record(ctx, model_, g);
    if (progress) progress();
  };
  const int64_t local = global_micro_ / dp_.size();
  if (model_.chunks() > 1)
    run_interleaved_forward_only(model_, pp_, local, batch.batch(), batch.seq_length(), forward);
  else
    run_forward_only(model_, pp_, local, batch.batch(), batch.seq_length(), forward);
  consumed_ += global_micro_ * batch.batch();
  slots_.reduce(ctx, dp_);
  slots_.reduce(ctx, pp_);
  slots_.read(ctx);
  return slots_.mean_loss();
}

}  // namespace cs
