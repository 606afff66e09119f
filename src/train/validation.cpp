#include "train/validation.h"

namespace cs {

Validator::Validator(Model& model, const BlendedDataset& data, Group& dp, int64_t global_micro, int64_t consumed)
    : model_(model), data_(data), dp_(dp), global_micro_(global_micro), consumed_(consumed),
      slots_(model.ctx().backend, global_micro) {}

double Validator::evaluate(MicroBatch& batch) {
  Ctx& ctx = model_.ctx();
  slots_.clear(ctx);
  for (int64_t g = dp_.rank(); g < global_micro_; g += dp_.size()) {
    batch.fill(data_, consumed_ + g * batch.batch());
    model_.forward(batch.tokens(), batch.targets(), batch.batch(), batch.seq_length());
    slots_.record(ctx, model_, g);
  }
  consumed_ += global_micro_ * batch.batch();
  slots_.reduce(ctx, dp_);
  slots_.read(ctx);
  return slots_.mean_loss();
}

}  // namespace cs
