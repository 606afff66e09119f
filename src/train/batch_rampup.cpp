#include "train/batch_rampup.h"

#include <fmt/core.h>


#include "core/error.h"

namespace cs {

int64_t BatchRampup::global_batch(int64_t consumed, int64_t global) const {
  if (!on() || consumed > samples) return global;
  // Python's float division and int() truncation, as Megatron computes it.
  const double per_increment = double(samples) / double((global - start) / increment);
  const int64_t steps = int64_t(double(consumed) / per_increment);
  return start + steps * increment;
}

std::vector<int64_t> BatchRampup::sizes(int64_t global, int64_t consumed) const {
  if (!on()) return {global};
  std::vector<int64_t> out;
  // The batches the rampup's iterations take from `consumed` on (a steep rampup skips some of the
  // START + k INCREMENT), then the global batch; check() bounds the walk.
  for (int64_t c = consumed; c <= samples;) {
    const int64_t b = global_batch(c, global);
    if (out.empty() || out.back() != b) out.push_back(b);
    c += b;
  }
  if (out.empty() || out.back() != global) out.push_back(global);
  return out;
}

int64_t BatchRampup::train_iterations(int64_t train_samples, int64_t global) const {
  int64_t iterations = 0, consumed = 0;
  // The rampup's iterations (up to the first past its samples), then the whole batches left.
  while (on() && consumed <= samples) {
    consumed += global_batch(consumed, global);
    ++iterations;
  }
  // Megatron's floor division would take iterations back off here; such a run is a mistake.
  if (train_samples < consumed)
    throw UsageError(fmt::format("--train-samples {}: the batch-size rampup (--rampup-batch-size {} {} {}) alone takes "
                                 "{} samples in {} iterations. Hint: more --train-samples, or a shorter rampup",
                                 train_samples, start, increment, samples, consumed, iterations));
  return iterations + (train_samples - consumed) / global;
}

void BatchRampup::check(int64_t global) const {
  if (!on()) return;
  if (start < 1 || increment < 1 || samples < 1)
    throw UsageError(fmt::format("--rampup-batch-size {} {} {}: expected a start batch, an increment and a number of "
                                 "samples, each at least 1", start, increment, samples));
  // The rampup's iterations are walked one by one (as Megatron counts them): at most kMaxIterations.
  if (samples / start >= kMaxIterations)
    throw UsageError(fmt::format("--rampup-batch-size {} {} {}: the rampup would take about {} iterations, expected "
                                 "fewer than {}. Hint: a larger start batch or fewer rampup samples", start, increment,
                                 samples, samples / start, kMaxIterations));
  if (start >= global)
    throw UsageError(fmt::format("--rampup-batch-size {} {} {}: the start batch must be below --global-batch-size {}. "
                                 "Hint: leave the flag out to train with {} throughout", start, increment, samples,
                                 global, global));
  if ((global - start) % increment != 0)
    throw UsageError(fmt::format("--rampup-batch-size {} {} {}: --global-batch-size {} minus the start batch ({}) is not a "
                                 "multiple of the increment {}", start, increment, samples, global, global - start,
                                 increment));
}

void BatchRampup::check_split(int64_t global, int64_t micro_batch, int64_t dp, int64_t consumed) const {
  for (const int64_t b : sizes(global, consumed))
    if (b % (micro_batch * dp) != 0)
      throw UsageError(fmt::format("--rampup-batch-size {} {} {}: its global batch {} is not a multiple of "
                                   "--micro-batch-size {} x data-parallel size {}. Hint: a start batch and an "
                                   "increment that are multiples of {}", start, increment, samples, b, micro_batch, dp,
                                   micro_batch * dp));
}

}  // namespace cs
