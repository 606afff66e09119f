// --data-path parsing, Megatron's greedy blending indices and the blended sample reader.
// The blend's own cache holds only (dataset, sample) per blended sample; each dataset keeps its
// GPT indices, so a dataset shared by several blends is indexed once per (split, size, seed).
#include "data/blended_dataset.h"

#include <cmath>
#include <cstdlib>
#include <limits>
#include <memory>

#include "core/error.h"
#include "core/log.h"
#include "data/numpy_random.h"
#include "fmt/core.h"

namespace cs {

namespace {

constexpr int kBlendVersion = 2;  // bump when the blending algorithm changes (2: Megatron-core sizes)
constexpr double kSurplus = 0.005;  // Megatron-core's mid_level_dataset_surplus default

// A whole-string decimal number (what Python's float() accepts, less inf/nan).
bool parse_number(const std::string& s, double* out) {
  const char* p = s.c_str();
  char* end = nullptr;
  double v = std::strtod(p, &end);
  if (end == p || *end != '\0' || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

[[noreturn]] void data_path_error(const char* flag, const std::string& what) {
  throw UsageError("[gpt_dataset] " + std::string(flag) + ": " + what +
                   ". Hint: pass one dataset prefix, or WEIGHT PREFIX pairs such as " + flag +
                   " 0.3 A_text_document 0.7 B_text_document");
}

}  // namespace

DataBlend parse_data_path(const std::vector<std::string>& args, const char* flag) {
  DataBlend b;
  double w = 0;
  if (args.empty()) data_path_error(flag, "got no values, expected a dataset prefix");
  if (args.size() == 1) {
    if (parse_number(args[0], &w))
      data_path_error(flag, "got only the weight " + args[0] + ", expected a dataset prefix after it");
    return {{1.0}, {args[0]}, false};
  }
  if (args.size() % 2 != 0)
    data_path_error(flag, "got " + std::to_string(args.size()) +
                    " values, expected WEIGHT PREFIX pairs (a weight without a prefix, or a "
                    "prefix without a weight?)");
  for (size_t i = 0; i < args.size(); i += 2) {
    if (!parse_number(args[i], &w))
      data_path_error(flag, "got \"" + args[i] + "\" where a weight was expected (value " +
                      std::to_string(i + 1) + "), expected a number before each prefix");
    double unused;
    if (parse_number(args[i + 1], &unused))
      data_path_error(flag, "got the number " + args[i + 1] + " after weight " + args[i] +
                      ", expected a dataset prefix");
    if (w < 0) data_path_error(flag, "weight " + args[i] + " of " + args[i + 1] + " is negative, expected > 0");
    if (w == 0)
      data_path_error(flag, "weight 0 of " + args[i + 1] + ", expected > 0 (leave the dataset out instead)");
    b.weights.push_back(w);
    b.prefixes.push_back(args[i + 1]);
  }
  const double sum = numpy_sum(b.weights);
  for (double& x : b.weights) x /= sum;
  b.weighted = true;
  return b;
}

void build_blending_indices(std::span<const double> weights, int64_t size, int16_t* dataset_index,
                            int64_t* dataset_sample_index) {
  const size_t n = weights.size();
  CS_CHECK(n >= 1 && n <= size_t(std::numeric_limits<int16_t>::max())) << n << " datasets";
  std::vector<int64_t> count(n, 0);
  for (int64_t i = 0; i < size; ++i) {
    const double at = std::max(double(i), 1.0);
    size_t best = 0;
    double best_error = weights[0] * at - double(count[0]);
    for (size_t d = 1; d < n; ++d) {
      double error = weights[d] * at - double(count[d]);
      if (error > best_error) {
        best_error = error;
        best = d;
      }
    }
    dataset_index[i] = int16_t(best);
    dataset_sample_index[i] = count[best]++;
  }
}

std::vector<int64_t> blend_samples_per_dataset(std::span<const double> weights, int64_t num_samples,
                                               double surplus) {
  std::vector<int64_t> out;
  for (double w : weights)
    out.push_back(int64_t(std::ceil(std::ceil(double(num_samples) * w) * (1.0 + surplus))));
  return out;
}

BlendedDataset BlendedDataset::build_or_load(const DataBlend& blend, const std::string& split,
                                             DataSplit which, int64_t num_samples,
                                             const GptDatasetOptions& opt, bool may_build) {
  CS_CHECK(!blend.prefixes.empty() && blend.prefixes.size() == blend.weights.size());
  CS_CHECK(num_samples >= 0) << num_samples;
  const size_t n = blend.prefixes.size();
  const bool single = n == 1 && !blend.weighted;
  std::vector<int64_t> per_set = single ? std::vector<int64_t>{num_samples}
                                        : blend_samples_per_dataset(blend.weights, num_samples, kSurplus);

  BlendedDataset b;
  for (size_t d = 0; d < n; ++d) {
    auto data = std::make_shared<const IndexedDataset>(blend.prefixes[d]);
    std::array<int64_t, 4> bounds = split_boundaries(split, data->size());
    int k = int(which);
    b.sets_.push_back(GptDataset::build_or_load(std::move(data), bounds[size_t(k)],
                                                bounds[size_t(k) + 1], per_set[d], opt, may_build));
    b.built_ = b.built_ || b.sets_.back().built_cache();
  }
  if (single) {
    b.num_samples_ = b.sets_[0].num_samples();
    return b;
  }

  // Megatron-core blends sum(ceil(N * w)) samples (>= N), with the weights normalised once more
  // by BlendedDataset (normalize(normalize(w)), which can move the last bit).
  for (int64_t k : blend_samples_per_dataset(blend.weights, num_samples, 0.0)) b.num_samples_ += k;
  std::vector<double> weights = blend.weights;
  const double wsum = numpy_sum(weights);
  for (double& x : weights) x /= wsum;
  std::string desc = "chuanspeed blended indices v" + std::to_string(kBlendVersion) + "\nsplit=" +
                     split + "\nwhich=" + std::to_string(int(which)) + "\nnum_samples=" +
                     std::to_string(b.num_samples_) + "\nseed=" + std::to_string(opt.seed) +
                     "\nseq_length=" + std::to_string(opt.seq_length) + "\n";
  for (size_t d = 0; d < n; ++d)
    desc += fmt::format("{:.17g} {} {}\n", blend.weights[d], blend.prefixes[d], b.sets_[d].cache_base());
  uint64_t hash = stable_hash(desc);
  b.cache_base_ = index_cache_base(blend.prefixes[0], opt.cache_dir, hash);
  std::vector<IndexFileSpec> specs = {
      {b.cache_base_ + "_blend_dataset_idx.bin", hash, 2, uint64_t(b.num_samples_)},
      {b.cache_base_ + "_blend_sample_idx.bin", hash, 8, uint64_t(b.num_samples_)},
  };
  auto build = [&](const IndexWriteFn& write) {
    const int64_t size = b.num_samples_;
    std::vector<int16_t> dataset_index(static_cast<size_t>(size));
    std::vector<int64_t> sample_index(static_cast<size_t>(size));
    build_blending_indices(weights, size, dataset_index.data(), sample_index.data());
    for (int64_t i = 0; i < size; ++i)  // the 0.5% surplus covers the greedy's overshoot
      CS_CHECK(sample_index[size_t(i)] < b.sets_[size_t(dataset_index[size_t(i)])].num_samples())
          << "blended sample " << i << " wants sample " << sample_index[size_t(i)] << " of dataset "
          << dataset_index[size_t(i)];
    write(0, dataset_index.data());
    write(1, sample_index.data());
    log_info("[gpt_dataset] blend of {} datasets: {} samples -> {}_blend_*_idx.bin", n, size,
             b.cache_base_);
  };
  bool built = false;
  std::vector<IndexFile> files = index_files_build_or_map(specs, may_build, build, &built);
  b.built_ = b.built_ || built;
  b.dataset_index_ = std::move(files[0]);
  b.dataset_sample_index_ = std::move(files[1]);
  return b;
}

std::pair<int, int64_t> BlendedDataset::source(int64_t i) const {
  CS_CHECK(i >= 0 && i < num_samples_) << "sample " << i << " of " << num_samples_;
  if (sets_.size() == 1) return {0, i};
  const int d = dataset_index_.data<int16_t>()[i];
  const int64_t k = dataset_sample_index_.data<int64_t>()[i];
  if (d < 0 || size_t(d) >= sets_.size() || k < 0 || k >= sets_[size_t(d)].num_samples())
    throw Error("[gpt_dataset] " + cache_base_ + "_blend_*_idx.bin: corrupt index cache: sample " +
                std::to_string(i) + " names dataset " + std::to_string(d) + " sample " +
                std::to_string(k) + ". Hint: delete " + cache_base_ +
                "_blend_*_idx.bin; the next run rebuilds them");
  return {d, k};
}

void BlendedDataset::sample(int64_t i, int32_t* out) const {
  auto [d, k] = source(i);
  sets_[size_t(d)].sample(k, out);
}

}  // namespace cs
