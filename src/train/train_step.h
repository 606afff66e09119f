// One optimizer step with Megatron's semantics: zero the gradients, forward and backward each of
// this rank's micro-batches (gradients of loss_scale x the mean over the global batch's
// micro-batches of each one's mean loss), sum the gradients over the data-parallel group (each
// layer's range as soon as backward has finished it on the last micro-batch), unscale, the
// global gradient norm, then skip (fp16 overflow), count a NaN, or clip and step AdamW; the loss
// scaler sees the outcome. Losses and the norm stay on the device until the one host read of the
// step, which decides and logs.
// Data parallelism (Megatron's sampler): global micro-batch g = mi x DP + dp_rank is samples
// [first + g B, first + (g + 1) B) of the step; rank dp_rank runs mi = 0 .. G/DP - 1. Tensor
// parallelism: the model's group (model.tp_group()); the norm sums every rank's own parameters
// once over it (replicated ones from tensor-parallel rank 0 only). Pipeline parallelism: the stages
// run the micro-batches in Megatron's 1F1B schedule; the losses (last stage) and the norm are summed
// over the pipeline group, so every rank logs and decides alike.
#pragma once
#include <functional>

#include "model/model.h"
#include "optim/adamw.h"
#include "optim/grad_clip.h"
#include "optim/loss_scaler.h"
#include "train/loss_slots.h"
#include "train/micro_batch.h"

namespace cs {

struct StepOutcome {
  double loss = 0;        // mean over micro-batches of each one's mean loss (NaN, inf as computed)
  double grad_norm = 0;   // global, after unscaling, before clipping
  double loss_scale = 1;  // the scale this step ran with
  double next_loss_scale = 1;  // the scale after the step's update (what Megatron's log line shows)
  int64_t trained_tokens = 0;  // per-token loss: counted targets of the global batch (every rank's)
  bool found_inf = false, stepped = false, skipped = false, nan = false;
  // --log-num-zeros-in-grad: the gradients' zero elements after unscaling (Megatron's count_zeros:
  // each counted once over the tensor-parallel ranks, summed over the model's ranks); -1: not counted.
  double num_zeros = -1;
};

class TrainStep {
 public:
  // global_micro: micro-batches in the global batch (over every data-parallel rank). fp16:
  // overflowing steps are skipped (and counted) instead of being NaN iterations.
  // pp: the pipeline group (null: one stage); its micro-batches run in the 1F1B schedule
  // (train/pipeline.h).
  // per_token_loss (instruction data): the loss is the sum of the global batch's token losses over
  // its number of counted targets (Megatron's loss_mask average over the whole batch) instead of
  // the mean of the micro-batches' means; micro-batches with few trained tokens weigh less.
  TrainStep(Model& model, AdamW& adam, LossScaler& scaler, Group& dp, int64_t global_micro, double clip_grad,
            bool fp16, Group* pp = nullptr, bool per_token_loss = false);
  // Runs the step; fill(g, batch) fills global micro-batch g; lr is the step's learning rate.
  // grad_hook (tests) sees the scaled flat gradients after backward and the data-parallel sum.
  StepOutcome run(const std::function<void(int64_t g, MicroBatch& batch)>& fill, MicroBatch& batch, double lr,
                  const std::function<void(Tensor&)>& grad_hook = {});
  // The L2 norm of the parameters as they stand (Megatron's --log-params-norm): of the fp32
  // master weights, each element counted once over the tensor-parallel ranks (the gradient norm's
  // ranges). A collective over the data-parallel (when the optimizer is sharded), tensor- and
  // pipeline-parallel groups: every rank calls it at the same iterations.
  double params_norm();
  // The micro-batches of the next steps' global batch (a batch-size rampup's): at most the
  // constructor's global_micro, a multiple of the data-parallel size.
  void set_global_micro(int64_t global_micro);
  // Count the gradients' zeros at every step (StepOutcome::num_zeros): one more pass over them.
  void count_zeros(bool on) { count_zeros_ = on; }

 private:
  // Sums one layer's gradient range over the data-parallel group.
  void reduce_layer(int layer);
  // out (F64 [1]) = this rank's part of FOLD (Ops::sum_squares: the squared norm; Ops::count_zeros)
  // of flat (its gradients or master weights: the shard when the optimizer is sharded): over
  // norm_ranges_, each element of the model counted on one rank only.
  void local_fold(const Tensor& flat, const Tensor& out, FoldOp fold);
  // Sums local_fold results (F64, one or several at once) over the model: the data-parallel (when
  // sharded), tensor- and pipeline-parallel groups.
  void sum_over_model(const Tensor& t);
  Model& model_;
  AdamW& adam_;
  LossScaler& scaler_;
  Group& dp_;
  SingleGroup one_stage_{"pp"};
  Group& pp_;
  int64_t global_micro_, local_micro_, max_micro_;
  std::vector<int64_t> counts_;  // each local micro-batch's counted targets
  double clip_grad_;
  bool fp16_, reduce_now_ = false, per_token_, count_zeros_ = false;
  LossSlots slots_;  // the global batch's loss sums and counts, then the squared gradient norm
  // The gradient ranges this rank counts in the global norm (grad_clip.h's norm_ranges, relative to
  // the gradients the norm is taken over), and F64 slots for their partial sums.
  std::vector<std::pair<int64_t, int64_t>> norm_ranges_;
  DeviceBuffer norm_parts_, params_sq_;
};

}  // namespace cs
