// Megatron's --rampup-batch-size START INCREMENT SAMPLES: the global batch grows from START by
// INCREMENT, one step every SAMPLES / ((GLOBAL - START) / INCREMENT) consumed samples, and is the
// full --global-batch-size once more than SAMPLES samples were consumed (Megatron's
// RampupBatchsizeNumMicroBatches, reproduced in its float arithmetic so that every iteration's
// batch is the one Megatron takes). Each global batch is split into micro-batches of
// --micro-batch-size over the data-parallel ranks; the number of micro-batches per iteration
// follows the batch.
#pragma once
#include <cstdint>
#include <vector>

namespace cs {

struct BatchRampup {
  int64_t start = 0, increment = 0, samples = 0;  // all 0: no rampup (the global batch throughout)
  static constexpr int64_t kMaxIterations = 10'000'000;  // of the rampup (GPT-3's takes 7,500)

  bool on() const { return start != 0 || increment != 0 || samples != 0; }
  // The global batch of the iteration that starts after `consumed` samples, out of `global`.
  int64_t global_batch(int64_t consumed, int64_t global) const;
  // The global batches a run takes from `consumed` samples on (a resumed run's: its checkpoint's),
  // smallest first (just `global` without a rampup).
  std::vector<int64_t> sizes(int64_t global, int64_t consumed = 0) const;
  // Megatron's update_train_iters: the iterations of --train-samples under the rampup (those of
  // the rampup itself, then the whole global batches left; a partial last batch is dropped).
  // UsageError when the rampup alone passes train_samples.
  int64_t train_iterations(int64_t train_samples, int64_t global) const;
  // Throws UsageError (naming --rampup-batch-size) unless the three values fit `global`.
  void check(int64_t global) const;
  // Throws UsageError unless every batch of sizes(global, consumed) splits into micro-batches of
  // micro_batch over dp data-parallel ranks (Megatron checks each as it comes; here before the
  // first iteration).
  void check_split(int64_t global, int64_t micro_batch, int64_t dp, int64_t consumed = 0) const;
};

}  // namespace cs
