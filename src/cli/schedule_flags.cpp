// The learning-rate and weight-decay schedule flags of `chuanspeed train` (Megatron-core's
// OptimizerParamScheduler settings, optim/lr_schedule.h), in samples: the iteration flags times the
// global batch, or the sample flags; the checks Megatron's arguments and scheduler assert.
#include <fmt/core.h>

#include "cli/train_flags.h"
#include "core/checked.h"
#include "core/error.h"

namespace cs::cli {

void TrainFlags::add_schedule_options(CLI::App& app) {
  app.add_option("--min-lr", min_lr, "learning rate at the end of the decay");
  app.add_option("--lr-decay-style", lr_decay_style,
                 "constant, linear, cosine, inverse-square-root or WSD (warmup-stable-decay: --lr until the last "
                 "--lr-wsd-decay-iters / --lr-wsd-decay-samples of the decay, then the anneal to --min-lr)")
      ->check(CLI::IsMember({"constant", "linear", "cosine", "inverse-square-root", "WSD"}));
  app.add_option("--lr-wsd-decay-style", lr_wsd_decay_style, "WSD's anneal: exponential (Megatron's default), linear, "
                 "cosine or minus_sqrt")
      ->check(CLI::IsMember({"exponential", "linear", "cosine", "minus_sqrt"}));
  app.add_option("--lr-wsd-decay-iters", lr_wsd_decay_iters, "WSD's anneal, in iterations (with --train-iters)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--lr-wsd-decay-samples", lr_wsd_decay_samples, "WSD's anneal, in samples (with --train-samples)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--lr-decay-iters", lr_decay_iters, "decay length (default --train-iters)");
  app.add_option("--lr-decay-samples", lr_decay_samples, "decay length in samples, with --train-samples "
                 "(default --train-samples)")->check(positive());
  app.add_option("--lr-warmup-iters", lr_warmup_iters, "linear warmup iterations");
  app.add_option("--lr-warmup-samples", lr_warmup_samples, "linear warmup in samples, with --train-samples");
  app.add_option("--lr-warmup-fraction", lr_warmup_fraction, "warmup as a fraction of the decay");
  app.add_option("--lr-warmup-init", lr_warmup_init, "learning rate the warmup starts from (default 0)");
  app.add_option("--weight-decay", weight_decay, "decoupled weight decay (not on norms)");
  app.add_option("--weight-decay-incr-style", weight_decay_incr_style,
                 "constant (--weight-decay throughout), or linear / cosine from --start-weight-decay to "
                 "--end-weight-decay over the run (Megatron's)")
      ->check(CLI::IsMember({"constant", "linear", "cosine"}));
  app.add_option("--start-weight-decay", start_weight_decay, "with --weight-decay-incr-style linear / cosine")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--end-weight-decay", end_weight_decay, "with --weight-decay-incr-style linear / cosine")
      ->check(CLI::NonNegativeNumber);
}

void TrainFlags::schedule_args(TrainArgs& a, int64_t gb) const {
  a.lr.max_lr = *lr;
  a.lr.min_lr = min_lr;
  a.lr.style = parse_lr_decay(lr_decay_style);
  a.lr.wsd_style = parse_wsd_decay(lr_wsd_decay_style);
  a.lr.init_lr = lr_warmup_init;
  // Megatron's steps: samples, from the iteration flags (x the global batch) or the sample flags,
  // not a mix of the two (a zero warmup of the other kind is no mix, as in Megatron's checks).
  const char* mixed = train_samples ? (lr_decay_iters ? "--lr-decay-iters"
                                       : lr_warmup_iters.value_or(0) ? "--lr-warmup-iters"
                                       : lr_wsd_decay_iters ? "--lr-wsd-decay-iters" : nullptr)
                                    : (lr_decay_samples ? "--lr-decay-samples"
                                       : lr_warmup_samples.value_or(0) ? "--lr-warmup-samples"
                                       : lr_wsd_decay_samples ? "--lr-wsd-decay-samples" : nullptr);
  if (mixed)
    throw UsageError(fmt::format("{} with {}: the schedule is counted in {}. Hint: use {}", mixed,
                                 train_samples ? "--train-samples" : "--train-iters",
                                 train_samples ? "samples" : "iterations",
                                 train_samples ? "--lr-decay-samples / --lr-warmup-samples / --lr-wsd-decay-samples"
                                               : "--lr-decay-iters / --lr-warmup-iters / --lr-wsd-decay-iters"));
  if (train_samples) {
    a.lr.decay_steps = lr_decay_samples.value_or(*train_samples);
    a.lr.warmup_steps = double(lr_warmup_samples.value_or(0));
  } else {
    a.lr.decay_steps = checked_mul(lr_decay_iters.value_or(a.train_iters), gb,
                                   lr_decay_iters ? "--lr-decay-iters x --global-batch-size"
                                                  : "--train-iters x --global-batch-size", 2);
    a.lr.warmup_steps = double(lr_warmup_iters.value_or(0)) * double(gb);
  }
  // WSD's anneal (Megatron asserts its length is given).
  if (train_samples)
    a.lr.wsd_decay_steps = lr_wsd_decay_samples.value_or(0);
  else if (lr_wsd_decay_iters)
    a.lr.wsd_decay_steps = checked_mul(*lr_wsd_decay_iters, gb, "--lr-wsd-decay-iters x --global-batch-size", 2);
  if (a.lr.style == LrDecay::WSD && !(train_samples ? lr_wsd_decay_samples : lr_wsd_decay_iters))
    throw UsageError(fmt::format("--lr-decay-style WSD: the anneal's length is missing. Hint: add {}",
                                 train_samples ? "--lr-wsd-decay-samples N" : "--lr-wsd-decay-iters N"));
  if (lr_warmup_fraction) {
    if (lr_warmup_iters.value_or(0) || lr_warmup_samples.value_or(0))
      throw UsageError(fmt::format("--lr-warmup-fraction with {} {}: one warmup. Hint: pass one of the two",
                                   lr_warmup_iters.value_or(0) ? "--lr-warmup-iters" : "--lr-warmup-samples",
                                   lr_warmup_iters.value_or(0) ? *lr_warmup_iters : *lr_warmup_samples));
    if (*lr_warmup_fraction < 0 || *lr_warmup_fraction > 1)
      throw UsageError(fmt::format("--lr-warmup-fraction {}: expected 0 to 1", *lr_warmup_fraction));
    a.lr.warmup_steps = *lr_warmup_fraction * double(a.lr.decay_steps);
  }
  // Megatron's scheduler asserts these.
  if (a.lr.decay_steps <= 0)
    throw UsageError(fmt::format("{} {}: expected at least 1", train_samples ? "--lr-decay-samples" : "--lr-decay-iters",
                                 train_samples ? a.lr.decay_steps : lr_decay_iters.value_or(a.train_iters)));
  if (a.lr.warmup_steps < 0)
    throw UsageError(fmt::format("{}: expected a warmup of 0 or more", train_samples ? "--lr-warmup-samples" : "--lr-warmup-iters"));
  if (a.lr.min_lr < 0 || a.lr.min_lr > a.lr.max_lr)
    throw UsageError(fmt::format("--min-lr {}: expected 0 to --lr {}", a.lr.min_lr, a.lr.max_lr));
  if (a.lr.init_lr < 0 || a.lr.init_lr > a.lr.max_lr)
    throw UsageError(fmt::format("--lr-warmup-init {}: expected 0 to --lr {}", a.lr.init_lr, a.lr.max_lr));
  a.train_samples = train_samples.value_or(0);
  a.adam = {adam_beta1, adam_beta2, adam_eps, weight_decay};
  // Megatron's weight-decay increment: constant takes --weight-decay alone, the others both ends.
  a.wd_incr = parse_wd_incr(weight_decay_incr_style);
  if (a.wd_incr == WdIncr::Constant) {
    if (start_weight_decay || end_weight_decay)
      throw UsageError(fmt::format("{} with --weight-decay-incr-style constant: expected --weight-decay alone. Hint: add "
                                   "--weight-decay-incr-style linear (or cosine) for an increasing weight decay",
                                   start_weight_decay ? "--start-weight-decay" : "--end-weight-decay"));
  } else {
    if (!start_weight_decay || !end_weight_decay)
      throw UsageError(fmt::format("--weight-decay-incr-style {}: expected --start-weight-decay and --end-weight-decay",
                                   weight_decay_incr_style));
    if (*end_weight_decay < *start_weight_decay)
      throw UsageError(fmt::format("--end-weight-decay {} below --start-weight-decay {}: the weight decay increases "
                                   "(Megatron asserts it)", *end_weight_decay, *start_weight_decay));
    a.adam.weight_decay = *start_weight_decay;
    a.end_weight_decay = *end_weight_decay;
  }
  a.wd_incr_steps = train_samples ? *train_samples
                                  : checked_mul(a.train_iters, gb, "--train-iters x --global-batch-size", 2);
}

}  // namespace cs::cli
