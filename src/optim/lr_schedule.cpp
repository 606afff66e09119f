#include "optim/lr_schedule.h"

#include <fmt/core.h>

#include <cmath>

#include "core/error.h"

namespace cs {

LrDecay parse_lr_decay(const std::string& s) {
  if (s == "constant") return LrDecay::Constant;
  if (s == "linear") return LrDecay::Linear;
  if (s == "cosine") return LrDecay::Cosine;
  throw UsageError("--lr-decay-style " + s + ": expected constant, linear or cosine");
}

const char* lr_decay_name(LrDecay d) {
  return d == LrDecay::Constant ? "constant" : d == LrDecay::Linear ? "linear" : "cosine";
}

std::vector<SettingDifference> differences(const SchedulerSettings& here, const SchedulerSettings& checkpoint) {
  std::vector<SettingDifference> out;
  // Exact comparison, as Megatron's: the same flags give the same doubles, and JSON keeps them
  // bit for bit ({} prints the shortest text that reads back to the same double).
  auto num = [&](const char* name, double h, double c) {
    if (h != c) out.push_back({name, fmt::format("{}", h), fmt::format("{}", c)});
  };
  num("--lr", here.lr.max_lr, checkpoint.lr.max_lr);
  num("--min-lr", here.lr.min_lr, checkpoint.lr.min_lr);
  num("warmup samples", here.lr.warmup_steps, checkpoint.lr.warmup_steps);
  num("decay samples", double(here.lr.decay_steps), double(checkpoint.lr.decay_steps));
  if (here.lr.style != checkpoint.lr.style)
    out.push_back({"--lr-decay-style", lr_decay_name(here.lr.style), lr_decay_name(checkpoint.lr.style)});
  num("--lr-warmup-init", here.lr.init_lr, checkpoint.lr.init_lr);
  num("--weight-decay", here.weight_decay, checkpoint.weight_decay);
  return out;
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
