// The training loop with Megatron's semantics (DESIGN §7): an iteration is one optimizer step
// (train_step.h) over global_batch samples in global_batch / micro_batch accumulated
// micro-batches; lr from the schedule; fp16-style dynamic loss scaling (skip and count overflowing
// steps); gradient clipping by the global norm; a log record every log_interval (train_log.h);
// validation (validation.h); checkpoints (checkpointing.h). Rank 0 of the world prints and writes.
#pragma once
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "model/model.h"
#include "optim/adamw.h"
#include "optim/lr_schedule.h"
#include "train/batch_rampup.h"
#include "train/metrics.h"
#include "train/micro_batch.h"
#include "train/tensorboard.h"

namespace cs {

struct TrainArgs {
  int64_t micro_batch = 1, global_batch = 1, train_iters = 0, seq_length = 0;
  int64_t train_samples = 0;  // --train-samples (0: train_iters x global_batch): sizes the train split's samples
  // --rampup-batch-size: the global batch of each iteration grows to global_batch (train_iters
  // then counts the rampup's iterations); off by default.
  BatchRampup rampup;
  std::vector<std::string> data_path;  // Megatron's --data-path: PREFIX, or W1 PREFIX1 W2 PREFIX2 ...
  // Megatron's --train-data-path, --valid-data-path, --test-data-path (instead of data_path and
  // split): each split's own data, all of its documents; an empty one: no such split.
  std::array<std::vector<std::string>, 3> split_data_path;
  std::string split = "969, 30, 1";     // --split (Megatron's default)
  std::string data_cache_path;         // --data-cache-path: index cache ("" = beside the data)
  // Megatron's --dataloader-type and --no-data-sharding: the order samples are taken in
  // (data/sample_order.h); single: in order.
  DataloaderType dataloader = DataloaderType::kSingle;
  bool data_sharding = true;
  // --is-instruction-dataset: data_path is one PREFIX_text_document with its loss mask beside it
  // (data/sft_dataset.h); the loss counts trained tokens only, averaged over the global batch.
  // pack: --reset-attention-mask --reset-position-ids (several samples per sequence).
  bool instruction = false, pack = false;
  // Megatron's --calculate-per-token-loss: the global batch's loss (and its gradient) is the sum of
  // its token losses over its counted targets, not the mean of the micro-batches' means; instruction
  // data is always averaged so (AscendSpeed's).
  bool calculate_per_token_loss = false;
  bool per_token_loss() const { return instruction || calculate_per_token_loss; }
  // Pretraining samples' end-of-document handling (--reset-attention-mask, --reset-position-ids,
  // --eod-mask-loss); eod_mask_loss applies to instruction samples too.
  EodOptions eod;
  int64_t eval_interval = 1000, eval_iters = 100;  // validation; eval_iters 0 = none
  int64_t start_eval_at_iter = 0;  // Megatron's --start-eval-at-iter: no validation before this iteration
  // Megatron's --eval-micro-batch-size / --eval-global-batch-size (0: the training's): the
  // validation and test splits' micro-batches and batches.
  int64_t eval_micro_batch = 0, eval_global_batch = 0;
  int64_t eval_mbs() const { return eval_micro_batch > 0 ? eval_micro_batch : micro_batch; }
  int64_t eval_gb() const { return eval_global_batch > 0 ? eval_global_batch : global_batch; }
  // Megatron's --skip-train: no training; the model (as loaded) is evaluated on eval_iters global
  // batches of the validation and of the test split, each from its first sample; nothing written.
  bool skip_train = false;
  std::string metrics_dir;             // where metrics.jsonl goes ("" = nowhere)
  std::string tensorboard_dir;         // TensorBoard event files ("" = none)
  TensorBoardTags tensorboard_tags;    // Megatron's --no-log-*-to-tensorboard, --log-world-size-to-tensorboard
  LrSchedule lr;
  AdamWConfig adam;  // adam.weight_decay: the weight decay (its start under an increment)
  // Megatron's --weight-decay-incr-style linear / cosine: from adam.weight_decay to end_weight_decay
  // over wd_incr_steps samples (lr_schedule.h SchedulerSettings).
  WdIncr wd_incr = WdIncr::Constant;
  double end_weight_decay = -1;
  int64_t wd_incr_steps = 0;
  SchedulerSettings scheduler_settings() const { return {lr, adam.weight_decay, end_weight_decay, wd_incr, wd_incr_steps}; }
  double clip_grad = 1.0;
  // Megatron's --use-distributed-optimizer / DeepSpeed ZeRO stage 1 and 2: the optimizer state
  // sharded over the data-parallel ranks (optim/adamw.h).
  bool distributed_optimizer = false;
  bool fp16 = false;
  bool bf16 = false;  // the model was built with Precision::bf16() (the caller's choice; logged)
  double initial_loss_scale = 4294967296.0, min_loss_scale = 1.0;
  double static_loss_scale = 0;  // fp16: Megatron's --loss-scale (DeepSpeed's fp16.loss_scale): a constant scale; 0: dynamic
  int64_t loss_scale_window = 1000, hysteresis = 2;
  int64_t log_interval = 100;
  bool log_params_norm = false;  // Megatron's --log-params-norm: "params norm: X |" in the log line
  bool log_num_zeros = false;    // Megatron's --log-num-zeros-in-grad: "num zeros: X |" in the log line
  int64_t exit_on_nan = 0;  // stop after this many non-finite iterations in a row (0: never)
  bool print_log = true;
  // --adaptive-threads: adapt the OpenMP thread count to the cores the run gets
  // (train/thread_governor.h).
  bool adapt_threads = false;
  // Checkpoints (native format): every save_interval iterations (0: never), at the end and when
  // *stop is set (SIGTERM/SIGINT: finish the step, save, return); keep_last prunes old ones.
  std::string save_dir;
  int64_t save_interval = 0, exit_interval = 0;  // Megatron's --exit-interval: save and stop
  // Megatron's --exit-duration-in-mins (in seconds here): save and stop after the first iteration
  // that ends this long after `started` (0: never); any rank's clock stops every rank.
  double exit_duration_s = 0;
  // When the run began (the command's start; Megatron counts from its start-up): the duration's
  // origin. Unset: when train() is called.
  std::optional<std::chrono::steady_clock::time_point> started;
  int keep_last = 0;
  double heartbeat_interval = 2.0;  // seconds between two writes of heartbeat.json (state changes: always)
  // Megatron's --no-save-optim / --no-save-rng: checkpoints without the optimizer state (and the
  // schedule and loss scale) / without the seed.
  bool save_optim = true, save_rng = true;
  uint64_t seed = 1234;
  const std::atomic<bool>* stop = nullptr;
  // Resume from a native checkpoint root: everything (weights, optimizer, schedule, scaler, data
  // cursor). load_optim=false (Megatron's --no-load-optim) starts Adam, the schedule (at 0) and the
  // loss scaler afresh, all three being Megatron's optimizer state; finetune loads weights only and
  // starts at iteration 0. scheduler_on_resume: what a checkpoint's schedule settings that differ
  // from lr / adam do.
  std::string resume_dir;
  int64_t resume_step = -1;  // Megatron's --ckpt-step: resume_dir's iteration to load (-1: the latest)
  bool load_optim = true, finetune = false;
  SchedulerOnResume scheduler_on_resume = SchedulerOnResume::Check;
  // Test hook, called after each iteration's backward with the (scaled) flat gradients.
  std::function<void(int64_t iteration, Tensor& grads)> grad_hook;
  // Test hook, called on rank 0 once a checkpoint is complete (the latest file names it).
  std::function<void(int64_t iteration)> after_save;
};

struct TrainResult {
  std::vector<LogRecord> records;   // one per log interval
  std::vector<double> losses;       // lm loss of every iteration (NaN where non-finite)
  std::vector<std::pair<int64_t, double>> valid_losses;  // (iteration, validation lm loss) during training
  // A run that reached train_iters: the validation and test losses at the end of training (NaN: none).
  double end_valid_loss = NAN, test_loss = NAN;
  int64_t start_iteration = 0, iterations = 0, consumed_samples = 0, skipped = 0, nan = 0;
  int64_t heartbeat_writes = 0;  // rank 0's writes of heartbeat.json
  bool stopped_on_nan = false, stopped_by_signal = false, stopped_by_exit_interval = false, stopped_by_duration = false;
};

// The evaluations' batches (Megatron asserts their split over micro-batch x DP); the model's
// activations are planned for the training micro-batch, which an evaluation's may not exceed.
// UsageError naming the flags otherwise.
void check_eval_batches(const TrainArgs& a, int64_t dp);

// The scheduler settings a resumed run trains with: `here` (the command line's) unless `stored`
// (its checkpoint's; absent in older checkpoints) differs, which is refused (UsageError naming each
// difference, as Megatron's OptimizerParamScheduler asserts) unless policy picks one; say: print
// the choice made.
SchedulerSettings settle_scheduler(const SchedulerSettings& here, const std::optional<SchedulerSettings>& stored,
                                   SchedulerOnResume policy, const std::string& dir, bool say);

// Trains `model` in place on its execution context. world: every rank of the run (rank 0 prints
// and writes; throughput is per rank); dp: the data-parallel replicas gradients and losses are
// summed over (world itself when there is no model parallelism); pp: the pipeline stages (null:
// one). Throws cs::Error on bad configuration (batch sizes, data).
TrainResult train(Model& model, const TrainArgs& args, Group& world, Group& dp, Group* pp = nullptr);
// One process, or data parallelism alone: dp is world.
inline TrainResult train(Model& model, const TrainArgs& args, Group& world) { return train(model, args, world, world); }

}  // namespace cs
