// Instruction (SFT) datasets, `train --is-instruction-dataset`: PREFIX_text_document holds one
// sample per sequence (a prompt and its response, tokenized), PREFIX_loss_mask_document (uint8,
// the same lengths) marks each token 1 when it is trained (a response token) and 0 when it is
// context (docs/data.md). A training sample is seq_length + 1 tokens, as in pretraining: either one
// instruction sample padded (the default, as Megatron-based SFT stacks do), or, with packing
// (--reset-attention-mask --reset-position-ids), whole samples placed into sequences by best fit
// so that little is padding; each placed sample keeps its own segment id, and attention and
// positions restart at its first token (model.h). A sample longer than seq_length + 1 is cut to
// that (counted). Samples never span two sequences, so every trained token is predicted from its
// own sample's context alone.
// The order is a function of the documents, --split and --seed only: each epoch shuffles the
// split's samples with numpy's legacy MT19937 (one stream from the seed, epoch after epoch), packs
// them in that order, then shuffles the packed sequences; epochs are added until NUM_SAMPLES
// sequences exist. Rebuilt in memory at start (no cache files): a resumed run sees the same
// sequence at the same index.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/blended_dataset.h"
#include "data/indexed_dataset.h"

namespace cs {

// PREFIX_text_document -> PREFIX_loss_mask_document. Throws cs::UsageError when TEXT_PREFIX does
// not end in _text_document (the mask's name could not be found from it).
std::string loss_mask_prefix(const std::string& text_prefix);

// Opens TEXT's loss mask (loss_mask_prefix of its prefix) and checks it is one: uint8, the same
// documents and sequence lengths. Throws cs::Error naming the mask's file otherwise (its values
// are checked where they are read: SftDataset::build).
std::shared_ptr<const IndexedDataset> open_loss_mask(const IndexedDataset& text);

struct SftOptions {
  int64_t seq_length = 0;
  uint32_t seed = 1234;
  bool pack = false;     // --reset-attention-mask --reset-position-ids
  int32_t pad_id = 0;    // the token padding carries (never trained, never attended to by a sample)
};

// What the samples are made of, over the epochs built.
struct SftStats {
  int64_t documents = 0;   // instruction samples in the split (one epoch)
  int64_t cut = 0;         // of those, cut to seq_length + 1 tokens
  int64_t epochs = 0;
  int64_t sequences = 0;   // training sequences built (over every epoch)
  int64_t tokens = 0;      // sample tokens placed in them (over every epoch)
  int64_t trained = 0;     // of those, trained tokens
  int64_t seq_length_plus_one = 0;
  // Padding as a fraction of every sequence token: 1 - tokens / (sequences * (seq_length + 1)).
  double padding_fraction() const;
};

class SftDataset {
 public:
  // The instruction samples of split WHICH of SPLIT (split_boundaries over the documents), at
  // least NUM_SAMPLES sequences. Throws cs::Error naming the file when the mask is missing or does
  // not match the text (document count, lengths, dtype, values other than 0 and 1).
  static SftDataset build(const std::string& text_prefix, const std::string& split, DataSplit which,
                          int64_t num_samples, const SftOptions& opt);

  int64_t num_samples() const { return int64_t(seq_begin_.size()) - 1; }
  int64_t seq_length() const { return opt_.seq_length; }
  bool packed() const { return opt_.pack; }
  const SftStats& stats() const { return stats_; }
  // Sequence I (0 <= I < num_samples()): seq_length + 1 tokens, whether each is trained, and each
  // one's segment (the placed sample's index within the sequence; padding gets one segment of its
  // own after the last sample).
  void sample(int64_t i, int32_t* tokens, uint8_t* trained, int32_t* segments) const;

 private:
  std::shared_ptr<const IndexedDataset> text_, mask_;
  SftOptions opt_;
  SftStats stats_;
  // Sequence i places samples items_[seq_begin_[i] .. seq_begin_[i + 1]) (dataset sequence ids),
  // each up to seq_length + 1 tokens.
  std::vector<int64_t> seq_begin_, items_;
};

}  // namespace cs
