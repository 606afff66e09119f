// Validation during training: eval_iters global batches of the validation split, forward only,
// continuing where the last evaluation stopped (Megatron's validation iterator is not reset, and
// its cursor is checkpointed as consumed_valid_samples, so a resumed run validates on the same
// samples). Data-parallel ranks split each global batch as in training (train_step.h); the loss
// sums stay on the device, summed over the data-parallel and pipeline groups, until the
// evaluation's one host read.
#pragma once
#include <functional>

#include "model/model.h"
#include "train/loss_slots.h"
#include "train/micro_batch.h"

namespace cs {

class Validator {
 public:
  // global_micro: micro-batches of one evaluation over every data-parallel rank.
  // pp: the pipeline group (null: one stage); the micro-batches pass through the stages forward only.
  // per_token: the loss averaged over every counted target (instruction data), as in training.
  Validator(Model& model, const SampleSource& data, Group& dp, int64_t global_micro, int64_t consumed,
            Group* pp = nullptr, bool per_token = false);
  // One evaluation: the mean over micro-batches of each one's mean loss (per token: over every
  // counted target). progress (if set) is called after each of this rank's micro-batches.
  double evaluate(MicroBatch& batch, const std::function<void()>& progress = {});
  int64_t consumed() const { return consumed_; }

 private:
  Model& model_;
  SampleSource data_;
  Group& dp_;
  SingleGroup one_stage_{"pp"};
  Group& pp_;
  int64_t global_micro_, consumed_;
  LossSlots slots_;
};

}  // namespace cs
