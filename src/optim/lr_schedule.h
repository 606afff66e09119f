// Megatron's learning-rate schedule (OptimizerParamScheduler, AnnealingLR before it), counted as
// Megatron counts it: in samples, the scheduler advancing by the global batch at every optimizer
// step that is not skipped. Linear warmup from --lr-warmup-init (default 0) to --lr over the
// warmup samples, then linear / cosine / constant / inverse-square-root decay to --min-lr at the
// decay samples, --min-lr after; or WSD (warmup-stable-decay): --lr until the last
// --lr-wsd-decay-{iters,samples} of the decay, then an anneal to --min-lr shaped by
// --lr-wsd-decay-style. The warmup may end between two iterations: --lr-warmup-fraction .1 of 1024 iterations of
// 8 samples is 819.2 samples, so iteration 103 (816 samples done) still warms up.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace cs {

enum class LrDecay { Constant, Linear, Cosine, InverseSquareRoot, WSD };
// The shape of WSD's anneal (Megatron's --lr-wsd-decay-style; its default: exponential).
enum class WsdDecay { Exponential, Linear, Cosine, MinusSqrt };

// Megatron's names: "constant" | "linear" | "cosine" | "inverse-square-root" | "WSD"; anything
// else is a UsageError naming --lr-decay-style.
LrDecay parse_lr_decay(const std::string& s);
// "exponential" | "linear" | "cosine" | "minus_sqrt"; anything else a UsageError naming
// --lr-wsd-decay-style.
WsdDecay parse_wsd_decay(const std::string& s);

struct LrSchedule {
  double max_lr = 0, min_lr = 0;
  double warmup_steps = 0;  // samples (Megatron's lr_warmup_steps: --lr-warmup-fraction x decay may be fractional)
  int64_t decay_steps = 0;  // samples (Megatron's lr_decay_steps)
  LrDecay style = LrDecay::Linear;
  double init_lr = 0;       // --lr-warmup-init: where the warmup starts
  // WSD: the anneal's length (samples, at the end of the decay) and shape. Megatron keeps neither
  // in its checkpoint: a resumed run takes the command line's.
  int64_t wsd_decay_steps = 0;
  WsdDecay wsd_style = WsdDecay::Exponential;

  // The lr after num_steps samples of completed optimizer steps (Megatron's get_lr(num_steps)).
  // Iteration i (1-based) trains with the lr of the samples of the steps before it, as in
  // Megatron, where the scheduler steps after the optimizer.
  double lr(int64_t num_steps) const;
};

// Megatron's weight-decay increment (--weight-decay-incr-style): constant (--weight-decay), or from
// --start-weight-decay to --end-weight-decay over the run's samples, linearly or along a cosine.
enum class WdIncr { Constant, Linear, Cosine };
// "constant" | "linear" | "cosine"; anything else a UsageError naming --weight-decay-incr-style.
WdIncr parse_wd_incr(const std::string& s);
const char* wd_incr_name(WdIncr w);

// What Megatron's OptimizerParamScheduler keeps in a checkpoint besides its position, and checks
// against the command line when a run resumes: the lr schedule and the weight decay's.
struct SchedulerSettings {
  LrSchedule lr;
  double weight_decay = 0;       // Megatron's start_wd (--weight-decay, or --start-weight-decay)
  double end_weight_decay = -1;  // end_wd; < 0: weight_decay (the constant style)
  WdIncr wd_style = WdIncr::Constant;
  int64_t wd_incr_steps = 0;     // samples: --train-iters x the global batch, or --train-samples
  double end_wd() const { return end_weight_decay < 0 ? weight_decay : end_weight_decay; }
  // The weight decay after num_steps samples of completed optimizer steps (Megatron's get_wd):
  // iteration i decays with that of the steps before it, as its lr.
  double wd(int64_t num_steps) const;
};

// How a resumed run treats a checkpoint's settings that differ from the command line's: refuse
// (Megatron's default), take the command line's (--override-opt_param-scheduler) or the
// checkpoint's (--use-checkpoint-opt_param-scheduler).
enum class SchedulerOnResume { Check, Override, UseCheckpoint };

struct SettingDifference {
  std::string name, here, checkpoint;  // e.g. "--lr", "0.0001", "0.0003"
};

// The settings of `here` that differ from `checkpoint`, in Megatron's order (lr, min lr, warmup,
// decay, decay style), then the warmup start and the weight decay's (start, end, style, and its
// span when it is not constant); values printed so they read back.
std::vector<SettingDifference> differences(const SchedulerSettings& here, const SchedulerSettings& checkpoint);

const char* lr_decay_name(LrDecay d);
const char* wsd_decay_name(WsdDecay d);

}  // namespace cs
