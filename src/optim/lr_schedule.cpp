#include "optim/lr_schedule.h"

#include <cmath>

#include "core/error.h"

namespace cs {

LrDecay parse_lr_decay(const std::string& s) {
  if (s == "constant") return LrDecay::Constant;
  if (s == "linear") return LrDecay::Linear;
  if (s == "cosine") return LrDecay::Cosine;
  throw UsageError("--lr-decay-style " + s + ": expected constant, linear or cosine");
}

double LrSchedule::lr(int64_t num_steps) const {
  const double steps = double(num_steps);
  if (warmup_steps > 0 && steps <= warmup_steps) return init_lr + (max_lr - init_lr) * steps / warmup_steps;
  if (style == LrDecay::Constant) return max_lr;
  if (num_steps > decay_steps) return min_lr;
  // Here warmup_steps < num_steps <= decay_steps, so the span is positive.
  const double ratio = (steps - warmup_steps) / (double(decay_steps) - warmup_steps);
  const double coeff = style == LrDecay::Linear ? 1.0 - ratio : 0.5 * (std::cos(M_PI * ratio) + 1.0);
  return min_lr + coeff * (max_lr - min_lr);
}

}  // namespace cs
