#include "optim/lr_schedule.h"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <iterator>

#include "core/error.h"

namespace cs {

namespace {
constexpr const char* kDecayNames[] = {"constant", "linear", "cosine", "inverse-square-root", "WSD"};
constexpr const char* kWsdNames[] = {"exponential", "linear", "cosine", "minus_sqrt"};
}  // namespace

LrDecay parse_lr_decay(const std::string& s) {
  for (size_t i = 0; i < std::size(kDecayNames); ++i)
    if (s == kDecayNames[i]) return LrDecay(i);
  throw UsageError("--lr-decay-style " + s + ": expected constant, linear, cosine, inverse-square-root or WSD");
}

WsdDecay parse_wsd_decay(const std::string& s) {
  for (size_t i = 0; i < std::size(kWsdNames); ++i)
    if (s == kWsdNames[i]) return WsdDecay(i);
  throw UsageError("--lr-wsd-decay-style " + s + ": expected exponential, linear, cosine or minus_sqrt");
}

const char* lr_decay_name(LrDecay d) { return kDecayNames[size_t(d)]; }

WdIncr parse_wd_incr(const std::string& s) {
  if (s == "constant") return WdIncr::Constant;
  if (s == "linear") return WdIncr::Linear;
  if (s == "cosine") return WdIncr::Cosine;
  throw UsageError("--weight-decay-incr-style " + s + ": expected constant, linear or cosine");
}

const char* wd_incr_name(WdIncr w) { return w == WdIncr::Constant ? "constant" : w == WdIncr::Linear ? "linear" : "cosine"; }

// Megatron-core's OptimizerParamScheduler.get_wd.
double SchedulerSettings::wd(int64_t num_steps) const {
  if (num_steps > wd_incr_steps || wd_style == WdIncr::Constant) return end_wd();
  const double ratio = double(num_steps) / double(wd_incr_steps);
  const double coeff = wd_style == WdIncr::Linear ? ratio : 0.5 * (std::cos(M_PI * (1 - ratio)) + 1.0);
  return weight_decay + coeff * (end_wd() - weight_decay);
}
const char* wsd_decay_name(WsdDecay d) { return kWsdNames[size_t(d)]; }

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
  num(here.wd_style == WdIncr::Constant ? "--weight-decay" : "--start-weight-decay", here.weight_decay,
      checkpoint.weight_decay);
  num("--end-weight-decay", here.end_wd(), checkpoint.end_wd());
  if (here.wd_style != checkpoint.wd_style)
    out.push_back({"--weight-decay-incr-style", wd_incr_name(here.wd_style), wd_incr_name(checkpoint.wd_style)});
  // Megatron compares the span always; a constant weight decay does not depend on it, so a run
  // with another --train-iters is not refused for it here.
  else if (here.wd_style != WdIncr::Constant)
    num("weight decay samples", double(here.wd_incr_steps), double(checkpoint.wd_incr_steps));
  return out;
}

// Megatron-core's OptimizerParamScheduler.get_lr, step for step.
double LrSchedule::lr(int64_t num_steps) const {
  const double steps = double(num_steps);
  if (warmup_steps > 0 && steps <= warmup_steps) return init_lr + (max_lr - init_lr) * steps / warmup_steps;
  if (style == LrDecay::Constant) return max_lr;
  if (num_steps > decay_steps) return min_lr;
  if (style == LrDecay::InverseSquareRoot) {
    const double w = std::max(warmup_steps, 1.0), n = std::max(steps, 1.0);
    return std::max(min_lr, max_lr * std::sqrt(w) / std::sqrt(n));
  }
  // Here warmup_steps < num_steps <= decay_steps, so the span is positive.
  const double ratio = (steps - warmup_steps) / (double(decay_steps) - warmup_steps);
  double coeff = 0;
  switch (style) {
    case LrDecay::Linear: coeff = 1.0 - ratio; break;
    case LrDecay::Cosine: coeff = 0.5 * (std::cos(M_PI * ratio) + 1.0); break;
    case LrDecay::WSD: {
      const int64_t anneal_start = decay_steps - wsd_decay_steps;
      if (num_steps <= anneal_start) {
        coeff = 1.0;
        break;
      }
      const double r = double(num_steps - anneal_start) / double(wsd_decay_steps);
      switch (wsd_style) {
        case WsdDecay::Linear: coeff = 1.0 - r; break;
        case WsdDecay::Cosine: coeff = 0.5 * (std::cos(M_PI * r) + 1.0); break;
        case WsdDecay::Exponential: coeff = 2.0 * std::pow(0.5, r) - 1.0; break;
        case WsdDecay::MinusSqrt: coeff = 1.0 - std::sqrt(r); break;
      }
      break;
    }
    default: break;
  }
  return min_lr + coeff * (max_lr - min_lr);
}

}  // namespace cs
