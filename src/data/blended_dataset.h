// Megatron-LM's dataset blending: --data-path 0.3 A 0.7 B draws each training sample from A or B
// so that the fraction taken from each tracks its normalised weight (helpers.cpp
// build_blending_indices), each dataset's split sized with Megatron's 0.5% surplus, as
// megatron/core/datasets/blended_megatron_dataset_builder.py does. One dataset without a weight is
// passed through unchanged; with a weight it is a one-dataset blend, as in Megatron. The blending indices
// are cached like the GPT ones (index_cache.h), so sample(i) is stateless and cheap.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "data/gpt_dataset.h"

namespace cs {

// The datasets of --data-path and their weights (normalised to sum to 1, as utils.normalize).
struct DataBlend {
  std::vector<double> weights;
  std::vector<std::string> prefixes;
  bool weighted = false;  // the weights were given (a lone prefix without one: false)
};

// Parses --data-path's values: "PREFIX" (weight 1) or "W1 PREFIX1 W2 PREFIX2 ..." with positive
// weights. Throws cs::UsageError naming the bad value for a weight without a prefix, a prefix
// without a weight, a weight that is negative, zero or not a number, or an empty list.
// FLAG names the flag in errors (--data-path, or a split's own --train-data-path ...).
DataBlend parse_data_path(const std::vector<std::string>& args, const char* flag = "--data-path");

// Megatron's build_blending_indices: for each of the SIZE samples, the dataset whose count lags
// its share most (largest weight * max(i, 1) - count; ties to the lower index) supplies its next
// sample. Fills DATASET_INDEX[i] and DATASET_SAMPLE_INDEX[i] (that dataset's running count).
void build_blending_indices(std::span<const double> weights, int64_t size, int16_t* dataset_index,
                            int64_t* dataset_sample_index);

// Megatron-core's _get_size_per_split_per_dataset: ceil(ceil(NUM_SAMPLES * w) * (1 + SURPLUS))
// per dataset. With SURPLUS 0 these are the blend's targets (it takes their sum); with Megatron's
// mid_level_dataset_surplus 0.005 what each dataset is built for, so the blend never runs dry.
std::vector<int64_t> blend_samples_per_dataset(std::span<const double> weights, int64_t num_samples,
                                               double surplus);

// Train, valid or test: which --split range a dataset is built from.
enum class DataSplit { kTrain = 0, kValid = 1, kTest = 2 };

// The samples of one split of a blend. Movable.
class BlendedDataset {
 public:
  // Builds or maps each dataset's indices for split WHICH of SPLIT (split_boundaries over its own
  // documents), then the blending indices for NUM_SAMPLES samples, cached beside the first
  // dataset (or in OPT.cache_dir). MAY_BUILD as in GptDataset::build_or_load.
  static BlendedDataset build_or_load(const DataBlend& blend, const std::string& split,
                                      DataSplit which, int64_t num_samples,
                                      const GptDatasetOptions& opt, bool may_build);

  // Samples available: for a blend, the sum of ceil(NUM_SAMPLES * w) (at least NUM_SAMPLES, as
  // Megatron's); all the one dataset's samples otherwise.
  int64_t num_samples() const { return num_samples_; }
  int64_t seq_length() const { return sets_.front().seq_length(); }
  // Writes the seq_length + 1 tokens of sample I (0 <= I < num_samples()) to OUT.
  void sample(int64_t i, int32_t* out) const;
  // (dataset, sample of that dataset) that sample I is.
  std::pair<int, int64_t> source(int64_t i) const;

  const std::vector<GptDataset>& datasets() const { return sets_; }
  // Whether this object built any cache file (false: everything was mapped).
  bool built_cache() const { return built_; }

 private:
  std::vector<GptDataset> sets_;
  IndexFile dataset_index_, dataset_sample_index_;  // unused with one dataset
  std::string cache_base_;
  int64_t num_samples_ = 0;
  bool built_ = false;
};

}  // namespace cs
