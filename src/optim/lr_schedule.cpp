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

double LrSchedule::lr(int64_t steps) const {
  if (warmup_iters > 0 && steps <= warmup_iters)
    return max_lr * double(steps) / double(warmup_iters);
  if (style == LrDecay::Constant) return max_lr;
  if (steps > decay_iters) return min_lr;
  const double ratio = double(steps - warmup_iters) / double(std::max<int64_t>(1, decay_iters - warmup_iters));
  const double coeff = style == LrDecay::Linear ? 1.0 - ratio : 0.5 * (std::cos(M_PI * ratio) + 1.0);
  return min_lr + coeff * (max_lr - min_lr);
}

}  // namespace cs
