// Megatron's learning-rate schedule (OptimizerParamScheduler, AnnealingLR before it), counted as
// Megatron counts it: in samples, the scheduler advancing by the global batch at every optimizer
// step that is not skipped. Linear warmup from --lr-warmup-init (default 0) to --lr over the
// warmup samples, then linear / cosine / constant decay to --min-lr at the decay samples, --min-lr
// after. The warmup may end between two iterations: --lr-warmup-fraction .1 of 1024 iterations of
// 8 samples is 819.2 samples, so iteration 103 (816 samples done) still warms up.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace cs {

enum class LrDecay { Constant, Linear, Cosine };

// "constant" | "linear" | "cosine"; anything else is a UsageError naming --lr-decay-style.
LrDecay parse_lr_decay(const std::string& s);

struct LrSchedule {
  double max_lr = 0, min_lr = 0;
  double warmup_steps = 0;  // samples (Megatron's lr_warmup_steps: --lr-warmup-fraction x decay may be fractional)
  int64_t decay_steps = 0;  // samples (Megatron's lr_decay_steps)
  LrDecay style = LrDecay::Linear;
  double init_lr = 0;       // --lr-warmup-init: where the warmup starts

  // The lr after num_steps samples of completed optimizer steps (Megatron's get_lr(num_steps)).
  // Iteration i (1-based) trains with the lr of the samples of the steps before it, as in
  // Megatron, where the scheduler steps after the optimizer.
  double lr(int64_t num_steps) const;
};

// What Megatron's OptimizerParamScheduler keeps in a checkpoint besides its position, and checks
// against the command line when a run resumes: the lr schedule and the weight decay (a constant
// here, Megatron's start_wd = end_wd).
struct SchedulerSettings {
  LrSchedule lr;
  double weight_decay = 0;
};

// How a resumed run treats a checkpoint's settings that differ from the command line's: refuse
// (Megatron's default), take the command line's (--override-opt_param-scheduler) or the
// checkpoint's (--use-checkpoint-opt_param-scheduler).
enum class SchedulerOnResume { Check, Override, UseCheckpoint };

struct SettingDifference {
  std::string name, here, checkpoint;  // e.g. "--lr", "0.0001", "0.0003"
};

// The settings of `here` that differ from `checkpoint`, in Megatron's order (lr, min lr, warmup,
// decay, decay style), then the warmup start and the weight decay; values printed so they read back.
std::vector<SettingDifference> differences(const SchedulerSettings& here, const SchedulerSettings& checkpoint);

const char* lr_decay_name(LrDecay d);

}  // namespace cs
