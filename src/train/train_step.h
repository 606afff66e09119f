// One optimizer step with Megatron's semantics: zero the gradients, forward and backward each
// micro-batch (gradients of loss_scale x the mean over micro-batches of each one's mean loss),
// unscale, the global gradient norm, then skip (fp16 overflow), count a NaN, or clip and step
// AdamW; the loss scaler sees the outcome. Losses and the norm stay on the device until the one
// host read of the step, which decides and logs.
#pragma once
#include <functional>

#include "backend/device_buffer.h"
#include "model/model.h"
#include "optim/adamw.h"
#include "optim/loss_scaler.h"
#include "optim/lr_schedule.h"
#include "train/micro_batch.h"

namespace cs {

struct StepOutcome {
  double loss = 0;        // mean over micro-batches of each one's mean loss (NaN, inf as computed)
  double grad_norm = 0;   // global, after unscaling, before clipping
  double loss_scale = 1;  // the scale this step ran with
  bool found_inf = false, stepped = false, skipped = false, nan = false;
};

class TrainStep {
 public:
  // fp16: overflowing steps are skipped (and counted) instead of being NaN iterations.
  TrainStep(Model& model, AdamW& adam, LossScaler& scaler, Group& world, int64_t n_micro, double clip_grad,
            bool fp16);
  // Runs the step on n_micro micro-batches, micro-batch mi filled by fill(mi, batch); lr is the
  // step's learning rate. grad_hook (tests) sees the scaled flat gradients after backward.
  StepOutcome run(const std::function<void(int64_t mi, MicroBatch& batch)>& fill, MicroBatch& batch, double lr,
                  const std::function<void(Tensor&)>& grad_hook = {});

 private:
  Model& model_;
  AdamW& adam_;
  LossScaler& scaler_;
  Group& world_;
  int64_t n_micro_;
  double clip_grad_;
  bool fp16_;
  DeviceBuffer scalars_mem_;
  Tensor scalars_;  // F64 [n_micro + 1]: each micro-batch's loss sum, then the squared grad norm
};

}  // namespace cs
