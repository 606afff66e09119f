// DeepSpeed's ds_config.json as AscendSpeed's Baichuan-7B launch writes it (--deepspeed
// --deepspeed_config FILE): what it decides for a chuanspeed run. zero_optimization.stage 1 or 2
// shards the optimizer state over the data-parallel ranks (stage 3 and offloading are refused);
// optimizer.params' betas, eps and weight_decay are the optimizer's (DeepSpeed runs the config's
// optimizer; the command line's lr schedule still drives the learning rate); fp16 sets the dynamic
// loss scaler; the batch sizes must agree with the flags; gradient_clipping, when present,
// overrides --clip-grad. Keys with no effect here are listed in one note.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "train/trainer.h"

namespace cs::cli {

struct DeepSpeedConfig {
  int zero_stage = 0;
  std::optional<double> beta1, beta2, eps, weight_decay, gradient_clipping;
  bool fp16 = false, bf16 = false;
  std::optional<double> initial_loss_scale, min_loss_scale;  // fp16: 2^initial_scale_power (loss_scale 0)
  std::optional<double> static_loss_scale;                     // fp16.loss_scale > 0: a constant scale
  std::optional<int64_t> loss_scale_window, hysteresis;
  std::optional<int64_t> train_batch_size, micro_batch_per_gpu, gradient_accumulation_steps;
  std::vector<std::string> unused_keys;  // dotted names of keys that change nothing here
};

// Reads PATH; a cs::Error naming the file and key for a value of the wrong type, a UsageError for
// what this program does not do (ZeRO stage 3, offloading, a static fp16 loss scale).
DeepSpeedConfig read_deepspeed_config(const std::string& path);

// Applies the config to a run's arguments (see the file comment); a UsageError naming both when
// its batch sizes disagree with --global-batch-size / --micro-batch-size. Returns the notes to
// print once (keys with no effect).
std::vector<std::string> apply_deepspeed_config(const DeepSpeedConfig& c, const std::string& path, TrainArgs& a);

}  // namespace cs::cli
