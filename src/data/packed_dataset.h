// The interim training data: every document of the dataset(s), in order, concatenated into one
// token stream and cut into samples of seq_length + 1 tokens that overlap by one (sample i covers
// tokens [i * seq, i * seq + seq + 1)), repeating from the start when exhausted. The data-pipeline
// issue replaces it with Megatron's shuffled GPT dataset; the cursor (consumed samples) stays.
#pragma once
#include <string>
#include <vector>

#include "data/indexed_dataset.h"

namespace cs {

class PackedDataset {
 public:
  // prefixes: one or more MMIDIDX datasets, used in the given order.
  PackedDataset(const std::vector<std::string>& prefixes, int64_t seq_length);
  // Distinct samples in one pass over the data (>= 1; an error when there are too few tokens).
  int64_t num_samples() const { return num_samples_; }
  int64_t num_tokens() const { return total_; }
  // Writes sample i (taken modulo num_samples()) as seq_length + 1 token ids.
  void sample(int64_t i, int32_t* out) const;

 private:
  // Copies `count` tokens starting at global stream position pos.
  void read_stream(int64_t pos, int64_t count, int32_t* out) const;
  std::vector<IndexedDataset> sets_;
  // One entry per sequence of every set: (set, sequence, first global token position).
  struct Piece {
    int32_t set;
    int64_t seq, start;
  };
  std::vector<Piece> pieces_;
  int64_t seq_length_, total_ = 0, num_samples_ = 0;
};

}  // namespace cs
