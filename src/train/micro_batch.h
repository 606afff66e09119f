// Micro-batch assembly: B samples of T + 1 tokens from a dataset at a sample cursor, as the
// model's inputs (tokens[0:T]) and targets (tokens[1:T+1]), on the host (the model uploads them).
#pragma once
#include <cstdint>
#include <vector>

#include "data/blended_dataset.h"

namespace cs {

class MicroBatch {
 public:
  MicroBatch(int64_t batch, int64_t seq_length);
  // Samples first, first + 1, ..., first + B - 1 of data (each modulo its size).
  void fill(const BlendedDataset& data, int64_t first);
  const int32_t* tokens() const { return tokens_.data(); }
  const int32_t* targets() const { return targets_.data(); }
  int64_t batch() const { return b_; }
  int64_t seq_length() const { return t_; }

 private:
  int64_t b_, t_;
  std::vector<int32_t> sample_, tokens_, targets_;
};

}  // namespace cs
