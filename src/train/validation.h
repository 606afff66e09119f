// Validation during training: eval_iters global batches of the validation split, forward only,
// continuing where the last evaluation stopped (Megatron's validation iterator is not reset, and
// its cursor is checkpointed as consumed_valid_samples, so a resumed run validates on the same
// samples). The loss sums stay on the device until the evaluation's one host read.
#pragma once
#include "backend/device_buffer.h"
#include "model/model.h"
#include "train/micro_batch.h"

namespace cs {

class Validator {
 public:
  Validator(Model& model, const BlendedDataset& data, int64_t micro_batches, int64_t consumed);
  // One evaluation: the mean over micro-batches of each one's mean loss.
  double evaluate(MicroBatch& batch);
  int64_t consumed() const { return consumed_; }

 private:
  Model& model_;
  const BlendedDataset& data_;
  int64_t n_micro_, consumed_;
  DeviceBuffer sums_mem_;
  Tensor sums_;  // F64 [n_micro]
};

}  // namespace cs
