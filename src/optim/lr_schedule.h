// Megatron's learning-rate schedule (OptimizerParamScheduler): linear warmup from 0 to --lr over
// the warmup iterations, then linear / cosine / constant decay to --min-lr at --lr-decay-iters,
// --min-lr after. Counted in iterations: Megatron counts in samples (iterations x global batch),
// which gives the same values for a fixed global batch size.
#pragma once
#include <cstdint>
#include <string>

namespace cs {

enum class LrDecay { Constant, Linear, Cosine };

// "constant" | "linear" | "cosine"; anything else is a UsageError naming --lr-decay-style.
LrDecay parse_lr_decay(const std::string& s);

struct LrSchedule {
  double max_lr = 0, min_lr = 0;
  int64_t warmup_iters = 0, decay_iters = 0;
  LrDecay style = LrDecay::Linear;

  // The lr after `steps` completed optimizer steps (Megatron's get_lr(num_steps)). Iteration i
  // (1-based) trains with lr(i - 1), as in Megatron, where the scheduler steps after the optimizer.
  double lr(int64_t steps) const;
};

}  // namespace cs
