// Micro-batch assembly: B samples of T + 1 tokens from a dataset at a sample cursor, as the
// model's inputs (tokens[0:T]) and targets (tokens[1:T+1]), on the host (the model uploads them).
// Instruction samples (data/sft_dataset.h) also mark which targets are trained: a target that is
// context (loss mask 0), padding, or the first token of another packed sample is -1 (ignored);
// packed sequences carry their segment ids for the model's attention and positions.
#pragma once
#include <cstdint>
#include <vector>

#include "data/blended_dataset.h"
#include "data/sample_order.h"
#include "data/sft_dataset.h"

namespace cs {

// Megatron's get_ltor_masks_and_position_ids on pretraining samples, which span documents: with
// the end-of-document id eod, --reset-attention-mask keeps each token's attention within its
// document (the EOD ends the document it closes), --reset-position-ids restarts the positions
// after each EOD, --eod-mask-loss leaves out the target predicted from an EOD input.
struct EodOptions {
  int32_t eod = -1;  // the tokenizer's end-of-document id; -1 when none is known
  bool reset_attention_mask = false, reset_position_ids = false, eod_mask_loss = false;
  bool any() const { return reset_attention_mask || reset_position_ids || eod_mask_loss; }
};

// Where micro-batches come from: Megatron's GPT samples (pretraining) or instruction samples
// (--is-instruction-dataset). Exactly one is set. order: which sample each run position takes
// (Megatron's --dataloader-type); null: position p is sample p, modulo the size.
struct SampleSource {
  const BlendedDataset* gpt = nullptr;
  const SftDataset* sft = nullptr;
  const SampleOrder* order = nullptr;
  int64_t num_samples() const { return gpt ? gpt->num_samples() : sft->num_samples(); }
};

class MicroBatch {
 public:
  // eod: how pretraining samples treat end-of-document tokens (instruction samples carry their
  // own segments and loss mask; eod_mask_loss applies to both).
  MicroBatch(int64_t batch, int64_t seq_length, const EodOptions& eod = {});
  // The samples at run positions first, first + 1, ..., first + B - 1 of data (its order's, or
  // each position modulo its size).
  void fill(const SampleSource& data, int64_t first);
  void fill(const BlendedDataset& data, int64_t first) { fill(SampleSource{&data, nullptr}, first); }
  const int32_t* tokens() const { return tokens_.data(); }
  const int32_t* targets() const { return targets_.data(); }
  // (B, T) segment ids of the inputs (packed instruction samples, or documents under
  // --reset-attention-mask); null otherwise.
  const int32_t* segments() const { return segmented_ ? segments_.data() : nullptr; }
  // (B, T) positions of the inputs of pretraining samples under --reset-position-ids (restarting
  // after each EOD) or --reset-attention-mask alone (0..T-1); null otherwise (the model then counts
  // positions from each packed sample's start, or from 0).
  const int32_t* positions() const { return positioned_ ? positions_.data() : nullptr; }
  // Targets that count (not -1).
  int64_t target_count() const { return count_; }
  int64_t batch() const { return b_; }
  int64_t seq_length() const { return t_; }

 private:
  // Megatron's masks for the GPT sample in sample_ at row `row`.
  void fill_gpt_row(int64_t row);
  int64_t b_, t_, count_ = 0;
  EodOptions eod_;
  bool segmented_ = false, positioned_ = false;
  std::vector<int32_t> sample_, tokens_, targets_, seg_sample_, segments_, positions_;
  std::vector<uint8_t> trained_;
};

}  // namespace cs
