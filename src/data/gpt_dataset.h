// Megatron-LM's GPT dataset: --split into train/valid/test document ranges, and for one range the
// document index (documents repeated per epoch and shuffled), the sample index ((document-index
// position, offset) where each seq_length+1-token sample starts; samples span documents and
// overlap by one token) and the shuffle index over samples, equal to what megatron/core/datasets
// gpt_dataset.py and helpers.cpp build for the same seed: the shuffles draw from one numpy-legacy
// MT19937 stream (numpy_random.h) in Megatron's order. tests/data/megatron_indices_test.cpp checks
// this against fixtures made by Megatron-core's own code. The indices are cached beside the data
// (index_cache.h); sample(i) is stateless and cheap.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "data/index_cache.h"
#include "data/indexed_dataset.h"
#include "data/numpy_random.h"

namespace cs {

// Megatron-core's split (blended_megatron_dataset_config.py parse_and_normalize_split and
// convert_split_vector_to_split_matrix, blended_megatron_dataset_builder.py): SPLIT is 1-3
// weights separated by ',' or '/' ("949,50,1"), missing ones 0, normalised to w; the boundaries
// are round-half-even(c_k * NUM_DOCS) of the running sums c = 0, w0, w0+w1, w0+w1+w2. Returns
// {0, a, b, c} so that train, valid and test are documents [0,a), [a,b), [b,c) (c is NUM_DOCS).
// Throws cs::UsageError for a malformed or negative split.
std::array<int64_t, 4> split_boundaries(const std::string& split, int64_t num_docs);

// Megatron's _get_num_epochs: the fewest epochs of TOKENS_PER_EPOCH tokens that give
// NUM_SAMPLES samples of SEQ_LENGTH + 1 tokens overlapping by one.
int64_t gpt_num_epochs(int64_t tokens_per_epoch, int64_t seq_length, int64_t num_samples);

// Megatron's separate_final_epoch: true when the last of NUM_EPOCHS epochs contributes fewer
// than int(0.8 * samples per epoch) samples; it is then shuffled apart from the earlier ones, so
// the few samples taken from it are not biased towards any documents.
bool gpt_separate_last_epoch(int64_t tokens_per_epoch, int64_t seq_length, int64_t num_samples,
                             int64_t num_epochs);

// Samples in the first NUM_EPOCHS - 1 epochs: ((NUM_EPOCHS - 1) * tokens - 1) / SEQ_LENGTH.
int64_t gpt_samples_before_last_epoch(int64_t tokens_per_epoch, int64_t seq_length,
                                      int64_t num_epochs);

// Megatron's _build_document_index over documents [BEGIN, END): NUM_EPOCHS copies shuffled
// together, or, with SEPARATE_LAST_EPOCH, the first NUM_EPOCHS - 1 copies shuffled together
// followed by the last copy shuffled alone, drawing from RNG in that order.
std::vector<int32_t> gpt_build_doc_idx(int64_t begin, int64_t end, int64_t num_epochs,
                                       bool separate_last_epoch, NumpyRandomState& rng);

// Megatron's helpers.cpp build_sample_idx (one extra token, last partial sample dropped):
// 2 * (S + 1) values, S = (NUM_EPOCHS * TOKENS_PER_EPOCH - 1) / SEQ_LENGTH; entry s is the
// (DOC_IDX position, token offset) where sample s starts and sample s - 1 ends (inclusive).
// LENGTHS[d] is the token count of document d.
std::vector<int64_t> gpt_build_sample_idx(std::span<const int32_t> lengths,
                                          std::span<const int32_t> doc_idx, int64_t seq_length,
                                          int64_t num_epochs, int64_t tokens_per_epoch);

// Megatron's _build_shuffle_index: [0, NUM_FIRST) shuffled, then [NUM_FIRST, TOTAL) shuffled
// apart (no draws when NUM_FIRST == TOTAL), drawing from RNG.
std::vector<int64_t> gpt_build_shuffle_idx(int64_t num_first, int64_t total, NumpyRandomState& rng);

// The three indices as Megatron builds them for documents [BEGIN, END) of LENGTHS (token count
// per document, indexed by document id): one numpy RandomState(SEED) consumed by the document
// index, then the shuffle index. NUM_SAMPLES is the number of samples asked for.
struct GptIndices {
  int64_t num_epochs = 0, num_samples = 0;
  bool separate_last_epoch = false;
  std::vector<int32_t> doc_idx;
  std::vector<int64_t> sample_idx, shuffle_idx;
};
GptIndices gpt_build_indices(std::span<const int32_t> lengths, int64_t begin, int64_t end,
                             int64_t num_samples, int64_t seq_length, uint32_t seed);

// What the indices depend on besides the documents.
struct GptDatasetOptions {
  int64_t seq_length = 0;
  uint64_t seed = 1234;  // 0 .. 2^32 - 1, as numpy.random.RandomState accepts
  std::string cache_dir;  // empty: the cache files go beside the data (Megatron's default)
};

// Training samples from documents [begin, end) of one MMIDIDX dataset. Movable.
class GptDataset {
 public:
  // Maps the cached indices for (DATA, [BEGIN, END), NUM_SAMPLES, OPT), building them first when
  // they are missing, stale or corrupt and MAY_BUILD (the one builder: rank 0); without MAY_BUILD
  // a missing or bad cache is a cs::Error. NUM_SAMPLES is the least number of samples wanted.
  static GptDataset build_or_load(std::shared_ptr<const IndexedDataset> data, int64_t begin,
                                  int64_t end, int64_t num_samples, const GptDatasetOptions& opt,
                                  bool may_build);

  // Samples available (at least the number asked for: whole epochs are indexed, as Megatron's).
  int64_t num_samples() const { return num_samples_; }
  int64_t seq_length() const { return seq_length_; }
  int64_t num_epochs() const { return num_epochs_; }
  bool separate_last_epoch() const { return separate_last_epoch_; }
  // Whether this object built the cache (false: it was mapped from an earlier build).
  bool built_cache() const { return built_; }
  // "PREFIX_<hash>": the cache files are this plus _{doc,sample,shuffle}_idx.bin.
  const std::string& cache_base() const { return cache_base_; }

  // Writes the seq_length + 1 tokens of sample I (0 <= I < num_samples()) to OUT.
  void sample(int64_t i, int32_t* out) const;

  // The mapped indices (for inspection and tests).
  std::span<const int32_t> doc_idx() const;
  std::span<const int64_t> sample_idx() const;  // 2 * (num_samples() + 1) values
  std::span<const int64_t> shuffle_idx() const;

 private:
  [[noreturn]] void corrupt(const IndexFile& f, const std::string& what) const;

  std::shared_ptr<const IndexedDataset> data_;
  IndexFile doc_, sample_, shuffle_;
  std::string cache_base_;
  int64_t num_samples_ = 0, seq_length_ = 0, num_epochs_ = 0;
  bool separate_last_epoch_ = false, built_ = false;
};

}  // namespace cs
