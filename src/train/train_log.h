// The training log: Megatron's interval accounting (the loss averaged over the interval's clean
// iterations, skipped and NaN iterations counted, time per iteration averaged), the log line,
// metrics.jsonl and TensorBoard scalars. Only the writing rank (rank 0 of the world) prints and
// writes; every rank keeps the same accounting.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "train/metrics.h"
#include "train/tensorboard.h"
#include "train/train_step.h"

namespace cs {

struct TrainLogConfig {
  int64_t train_iters = 0, seq_length = 0, world_size = 1;
  double flops_per_sample = 0;  // model FLOPs of one sample (model/flops.h)
  bool print = true;    // print the log line on stdout
  bool writer = true;   // this rank prints and writes files
  bool instruction = false;  // instruction data: the records count trained tokens
  std::string metrics_dir, tensorboard_dir;
  TensorBoardTags tags;
};

class TrainLog {
 public:
  explicit TrainLog(const TrainLogConfig& cfg);
  // Accounts one iteration's outcome over global_batch samples, which took `seconds`, at learning
  // rate lr. The interval's throughput is its samples over its time (a rampup's batches differ).
  void add(const StepOutcome& o, double seconds, double lr, int64_t global_batch);
  // The record of the interval ending at `iteration` (consumed samples so far), printed and
  // written; the interval's accumulators restart.
  // params_norm: --log-params-norm's figure (-1: none).
  LogRecord flush(int64_t iteration, int64_t consumed_samples, double params_norm = -1);
  // An evaluation at `iteration` (after consumed_samples training samples): Megatron's validation
  // line (" validation loss at AT | ...", between two lines of dashes), metrics and TensorBoard.
  // AT: "iteration N" during training, "the end of training for val data" / "... for test data"
  // after it; test: the test split.
  void validation(const std::string& at, int64_t iteration, int64_t consumed_samples, double loss, bool test = false,
                  bool end_of_training = false);

 private:
  // TensorBoard: the scalars at `iteration`, and again as "TAG vs samples" at consumed_samples.
  void scalars_with_samples(int64_t iteration, int64_t consumed_samples,
                            std::vector<std::pair<std::string, double>> s);
  TrainLogConfig cfg_;
  MetricsWriter metrics_;
  std::unique_ptr<TensorBoardWriter> tb_;
  double loss_ = 0, seconds_ = 0, last_norm_ = 0, last_lr_ = 0, last_scale_ = 1, last_zeros_ = -1;
  int64_t clean_ = 0, iters_ = 0, skipped_ = 0, nan_ = 0, trained_ = 0, samples_ = 0, last_batch_ = 0;
  bool last_norm_known_ = true;
};

}  // namespace cs
