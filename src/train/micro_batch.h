// Micro-batch assembly: B samples of T + 1 tokens from a dataset at a sample cursor, as the
// model's inputs (tokens[0:T]) and targets (tokens[1:T+1]), on the host (the model uploads them).
// Instruction samples (data/sft_dataset.h) also mark which targets are trained: a target that is
// context (loss mask 0), padding, or the first token of another packed sample is -1 (ignored);
// packed sequences carry their segment ids for the model's attention and positions.
#pragma once
#include <cstdint>
#include <vector>

#include "data/blended_dataset.h"
#include "data/sft_dataset.h"

namespace cs {

// Where micro-batches come from: Megatron's GPT samples (pretraining) or instruction samples
// (--is-instruction-dataset). Exactly one is set.
struct SampleSource {
  const BlendedDataset* gpt = nullptr;
  const SftDataset* sft = nullptr;
  int64_t num_samples() const { return gpt ? gpt->num_samples() : sft->num_samples(); }
};

class MicroBatch {
 public:
  MicroBatch(int64_t batch, int64_t seq_length);
  // Samples first, first + 1, ..., first + B - 1 of data (each modulo its size).
  void fill(const SampleSource& data, int64_t first);
  void fill(const BlendedDataset& data, int64_t first) { fill(SampleSource{&data, nullptr}, first); }
  const int32_t* tokens() const { return tokens_.data(); }
  const int32_t* targets() const { return targets_.data(); }
  // Packed instruction samples: (B, T) segment ids of the inputs; null otherwise.
  const int32_t* segments() const { return packed_ ? segments_.data() : nullptr; }
  // Targets that count (not -1).
  int64_t target_count() const { return count_; }
  int64_t batch() const { return b_; }
  int64_t seq_length() const { return t_; }

 private:
  int64_t b_, t_, count_ = 0;
  bool packed_ = false;
  std::vector<int32_t> sample_, tokens_, targets_, seg_sample_, segments_;
  std::vector<uint8_t> trained_;
};

}  // namespace cs
