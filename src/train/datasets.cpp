#include "train/datasets.h"

#include <fmt/core.h>

#include <cstdio>

#include "core/checked.h"
#include "core/error.h"
#include "data/gpt_dataset.h"

namespace cs {

namespace {
// One line on what the instruction samples became (rank 0).
void describe(const SftDataset& d, const char* split) {
  const SftStats& s = d.stats();
  std::printf("[train] instruction data, %s split: %lld samples (%lld cut to %lld tokens), %lld epoch%s in %lld "
              "sequences%s; trained tokens %.1f%% of the samples' tokens, padding %.2f%% of the sequences' tokens\n",
              split, (long long)s.documents, (long long)s.cut, (long long)s.seq_length_plus_one, (long long)s.epochs,
              s.epochs == 1 ? "" : "s", (long long)s.sequences, d.packed() ? " (packed)" : " (one sample each, padded)",
              s.tokens ? 100.0 * double(s.trained) / double(s.tokens) : 0.0, 100.0 * s.padding_fraction());
  std::fflush(stdout);
}

// Whether --split gives split WHICH a share at all (Megatron builds no dataset for a zero one).
bool split_has_share(const std::string& split, DataSplit which) {
  const auto b = split_boundaries(split, int64_t(1) << 40);
  return b[size_t(which) + 1] > b[size_t(which)];
}

// Builds the validation or test split with BUILD, or leaves it out with a line saying why (an
// empty test split: silently).
template <class Build>
void optional_split(const TrainArgs& a, DataSplit which, bool say, Build build) {
  const char* name = which == DataSplit::kValid ? "validation" : "test";
  if (!split_has_share(a.split, which)) {
    if (say && which == DataSplit::kValid)
      std::fprintf(stderr, "[train] no validation: --split %s gives it no share\n", a.split.c_str());
    return;
  }
  try {
    build();
  } catch (const Error& e) {
    // A test split too small for one sample goes silently: small corpora with Megatron's default
    // --split (969,30,1) give it a document or none, and Megatron builds none for an empty range.
    const bool empty = dynamic_cast<const EmptySplit*>(&e) != nullptr;
    if (say && !(empty && which == DataSplit::kTest)) std::fprintf(stderr, "[train] no %s: %s\n", name, e.what());
  }
}
}  // namespace

Datasets open_datasets(const TrainArgs& a, bool may_build, bool say) {
  const DataBlend blend = parse_data_path(a.data_path);
  const GptDatasetOptions dopt{a.seq_length, a.seed, a.data_cache_path};
  Datasets d;
  // Megatron's train samples: --train-samples itself, else --train-iters x --global-batch-size.
  const int64_t n_train = a.train_samples > 0 ? a.train_samples
                                              : checked_mul(a.train_iters, a.global_batch, "--train-iters x --global-batch-size", 2);
  const char* what = "validation samples: (--train-iters / --eval-interval + 1) x --eval-iters x --global-batch-size";
  const bool evaluate = a.eval_iters > 0 && a.eval_interval > 0;
  const int64_t n_valid =
      evaluate ? checked_mul(checked_mul(a.train_iters / a.eval_interval + 1, a.eval_iters, what, 2), a.global_batch, what, 2)
               : 0;
  const int64_t n_test = evaluate ? checked_mul(a.eval_iters, a.global_batch, "--eval-iters x --global-batch-size", 2) : 0;
  if (a.instruction) {
    if (blend.prefixes.size() != 1 || blend.weighted)
      throw UsageError("--data-path: --is-instruction-dataset takes one PREFIX_text_document (no weights). Hint: "
                       "preprocess the instruction corpora together into one dataset");
    if (a.seed > 0xffffffffull) throw UsageError(fmt::format("--seed {}: expected 0 .. 2^32 - 1", a.seed));
    const SftOptions so{a.seq_length, uint32_t(a.seed), a.pack, 0};
    d.sft_train = std::make_unique<SftDataset>(SftDataset::build(blend.prefixes[0], a.split, DataSplit::kTrain, n_train, so));
    d.train_src.sft = d.sft_train.get();
    if (say) describe(*d.sft_train, "train");
    auto sft_split = [&](DataSplit which, int64_t n, std::unique_ptr<SftDataset>& ds, SampleSource& src) {
      optional_split(a, which, say, [&] {
        ds = std::make_unique<SftDataset>(SftDataset::build(blend.prefixes[0], a.split, which, n, so));
        src.sft = ds.get();
        if (say) describe(*ds, which == DataSplit::kValid ? "valid" : "test");
      });
    };
    if (n_valid > 0) sft_split(DataSplit::kValid, n_valid, d.sft_valid, d.valid_src);
    if (n_test > 0) sft_split(DataSplit::kTest, n_test, d.sft_test, d.test_src);
    return d;
  }
  d.train = std::make_unique<BlendedDataset>(
      BlendedDataset::build_or_load(blend, a.split, DataSplit::kTrain, n_train, dopt, may_build));
  d.train_src.gpt = d.train.get();
  auto gpt_split = [&](DataSplit which, int64_t n, std::unique_ptr<BlendedDataset>& ds, SampleSource& src) {
    optional_split(a, which, say, [&] {
      ds = std::make_unique<BlendedDataset>(BlendedDataset::build_or_load(blend, a.split, which, n, dopt, may_build));
      src.gpt = ds.get();
    });
  };
  if (n_valid > 0) gpt_split(DataSplit::kValid, n_valid, d.valid, d.valid_src);
  if (n_test > 0) gpt_split(DataSplit::kTest, n_test, d.test, d.test_src);
  return d;
}

}  // namespace cs
