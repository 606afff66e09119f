// Megatron-LM's --dataloader-type: the order in which a run takes a dataset's samples.
//  - single (Megatron's default): position p is sample p; the DP ranks share each micro-batch
//    step's mbs x dp consecutive samples, rank r the r-th mbs of them.
//  - cyclic: MegatronPretrainingRandomSampler re-iterated by cyclic_iter (megatron/training/
//    datasets/data_samplers.py). Each epoch takes the dataset's first A = total - total % (mbs x dp)
//    samples ("active"), shuffled by torch.randperm seeded with the epoch number. With data
//    sharding (the default) rank r shuffles its own bucket [r x A/dp, (r+1) x A/dp); with
//    --no-data-sharding the ranks stride through one permutation of the whole epoch.
// Either way the sample at a run position is a pure function of the position, the micro-batch and
// the DP size, so a resumed run (which knows only its consumed samples) continues exactly.
// Checked against Megatron's sampler and torch.randperm in tests/data/sample_order_test.cpp
// (fixture from tools/fixtures/make_cyclic_fixture.py).
#pragma once
#include <cstdint>
#include <vector>

namespace cs {

// torch.randperm(n, generator=torch.Generator().manual_seed(seed)) on the CPU, value for value:
// a Fisher-Yates pass on 32-bit MT19937 draws for n < 2^32 / 20, the inside-out variant on 64-bit
// draws (high half first) above (aten/src/ATen/native/TensorFactories.cpp, randperm_cpu).
// torch's CPU generator is MT19937 seeded with the low 32 bits of the seed.
std::vector<int64_t> torch_randperm(int64_t n, uint64_t seed);

enum class DataloaderType { kSingle, kCyclic };

class SampleOrder {
 public:
  // single: position p is sample p % total. cyclic: as above; throws cs::Error when the dataset has
  // fewer than mbs x dp samples. `what` names the dataset in errors.
  SampleOrder(DataloaderType type, bool data_sharding, int64_t total, int64_t micro_batch, int64_t dp,
              const char* what = "the dataset");
  // The dataset sample at run position P (>= 0). Not thread-safe: it keeps the current epoch's
  // permutation. Throws cs::Error for a position past the first epoch without data sharding where
  // rank 0's stride through the epoch leaves it a whole micro-batch beyond the active samples
  // (ceil(((total / mbs) x mbs - A) / dp) >= mbs): there Megatron's ranks take different numbers of
  // micro-batches per epoch and fall out of step.
  int64_t index(int64_t p) const;
  int64_t total() const { return total_; }

 private:
  const std::vector<int64_t>& epoch_perm(int64_t epoch) const;
  DataloaderType type_;
  bool sharding_;
  int64_t total_, mbs_, dp_, active_;
  const char* what_ = "the dataset";
  mutable int64_t epoch_ = -1;
  mutable std::vector<int64_t> perm_;
};

}  // namespace cs
