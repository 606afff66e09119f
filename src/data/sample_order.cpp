#include "data/sample_order.h"

#include <fmt/core.h>

#include <limits>
#include <numeric>
#include <random>

#include "core/error.h"

namespace cs {

std::vector<int64_t> torch_randperm(int64_t n, uint64_t seed) {
  std::vector<int64_t> r(size_t(n > 0 ? n : 0));
  std::mt19937 mt(uint32_t(seed & 0xffffffffu));
  if (n < int64_t(std::numeric_limits<uint32_t>::max() / 20)) {
    std::iota(r.begin(), r.end(), int64_t{0});
    for (int64_t i = 0; i + 1 < n; ++i) {
      const int64_t z = int64_t(uint32_t(mt()) % uint64_t(n - i));
      std::swap(r[size_t(i)], r[size_t(z + i)]);
    }
    return r;
  }
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t hi = uint32_t(mt()), lo = uint32_t(mt());
    const int64_t z = int64_t(((hi << 32) | lo) % uint64_t(i + 1));
    r[size_t(i)] = r[size_t(z)];
    r[size_t(z)] = i;
  }
  return r;
}

SampleOrder::SampleOrder(DataloaderType type, bool data_sharding, int64_t total, int64_t micro_batch, int64_t dp,
                         const char* what)
    : type_(type), sharding_(data_sharding), total_(total), mbs_(micro_batch), dp_(dp) {
  const int64_t step = mbs_ * dp_;
  active_ = total_ - total_ % step;
  if (type_ != DataloaderType::kCyclic) return;
  if (active_ <= 0)
    throw Error(fmt::format("--dataloader-type cyclic: {} has {} samples, fewer than one micro-batch step "
                                 "(--micro-batch-size {} x {} data-parallel ranks). Hint: use more data, or "
                                 "--dataloader-type single", what, total_, mbs_, dp_));
  what_ = what;
}

const std::vector<int64_t>& SampleOrder::epoch_perm(int64_t epoch) const {
  if (epoch != epoch_) {
    // Sharded: each rank permutes its bucket of A / dp samples; else one permutation of the
    // (total / mbs) x mbs samples, of which the ranks stride through the first A.
    perm_ = torch_randperm(sharding_ ? active_ / dp_ : (total_ / mbs_) * mbs_, uint64_t(epoch));
    epoch_ = epoch;
  }
  return perm_;
}

int64_t SampleOrder::index(int64_t p) const {
  if (type_ == DataloaderType::kSingle) return p % total_;
  const int64_t step = mbs_ * dp_;
  // Unsharded, the ranks stride through (total / mbs) x mbs samples: when that leaves rank 0 a whole
  // micro-batch beyond the active ones, some of Megatron's ranks take one more micro-batch at the
  // end of the epoch than the others and start the next one elsewhere (and its own resume no longer
  // continues its run). A run's datasets are sized to cover it, so this needs a run longer than its
  // data.
  if (!sharding_ && p >= active_ && ((total_ / mbs_) * mbs_ - active_ + dp_ - 1) / dp_ >= mbs_)
    throw Error(fmt::format("--dataloader-type cyclic --no-data-sharding: the run has taken the {} active samples of "
                            "{} ({} in all, {} x {} per micro-batch step), where Megatron's data-parallel ranks would "
                            "take different numbers of micro-batches and fall out of step. Hint: leave out "
                            "--no-data-sharding (shard the data, Megatron's default)", active_, what_, total_, mbs_, dp_));
  const int64_t epoch = p / active_, q = p % active_;
  // q = k x step + r x mbs + j: the j-th sample of rank r's k-th micro-batch of this epoch.
  const int64_t k = q / step, r = q % step / mbs_, j = q % mbs_;
  const std::vector<int64_t>& perm = epoch_perm(epoch);
  if (sharding_) return r * (active_ / dp_) + perm[size_t(k * mbs_ + j)];
  return perm[size_t(k * step + j * dp_ + r)];
}

}  // namespace cs
