#include "train/micro_batch.h"

#include <algorithm>

namespace cs {

MicroBatch::MicroBatch(int64_t batch, int64_t seq_length)
    : b_(batch), t_(seq_length), sample_(size_t(seq_length + 1)), tokens_(size_t(batch * seq_length)),
      targets_(tokens_.size()), seg_sample_(sample_.size()), segments_(tokens_.size()), trained_(sample_.size()) {}

void MicroBatch::fill(const SampleSource& data, int64_t first) {
  const int64_t n = data.num_samples();
  count_ = 0;
  packed_ = data.sft && data.sft->packed();
  for (int64_t bi = 0; bi < b_; ++bi) {
    const int64_t row = bi * t_;
    if (data.gpt) {
      data.gpt->sample((first + bi) % n, sample_.data());
      std::copy(sample_.begin(), sample_.end() - 1, tokens_.begin() + row);
      std::copy(sample_.begin() + 1, sample_.end(), targets_.begin() + row);
      count_ += t_;
      continue;
    }
    data.sft->sample((first + bi) % n, sample_.data(), trained_.data(), seg_sample_.data());
    for (int64_t t = 0; t < t_; ++t) {
      // Trained, and predicted from its own sample (the token before it in the same segment).
      const bool counted = trained_[size_t(t + 1)] && seg_sample_[size_t(t + 1)] == seg_sample_[size_t(t)];
      tokens_[size_t(row + t)] = sample_[size_t(t)];
      targets_[size_t(row + t)] = counted ? sample_[size_t(t + 1)] : -1;
      segments_[size_t(row + t)] = seg_sample_[size_t(t)];
      count_ += counted;
    }
  }
}

}  // namespace cs
