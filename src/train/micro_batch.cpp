#include "train/micro_batch.h"

#include <algorithm>

namespace cs {

MicroBatch::MicroBatch(int64_t batch, int64_t seq_length)
    : b_(batch), t_(seq_length), sample_(size_t(seq_length + 1)), tokens_(size_t(batch * seq_length)),
      targets_(tokens_.size()) {}

void MicroBatch::fill(const BlendedDataset& data, int64_t first) {
  for (int64_t bi = 0; bi < b_; ++bi) {
    data.sample((first + bi) % data.num_samples(), sample_.data());
    std::copy(sample_.begin(), sample_.end() - 1, tokens_.begin() + bi * t_);
    std::copy(sample_.begin() + 1, sample_.end(), targets_.begin() + bi * t_);
  }
}

}  // namespace cs
