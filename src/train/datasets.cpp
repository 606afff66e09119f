#include "train/datasets.h"

#include <fmt/core.h>

#include <algorithm>
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

// Whether SPLIT gives split WHICH a share at all (Megatron builds no dataset for a zero one).
bool split_has_share(const std::string& split, DataSplit which) {
  const auto b = split_boundaries(split, int64_t(1) << 40);
  return b[size_t(which) + 1] > b[size_t(which)];
}

// Where split WHICH comes from: --data-path cut by --split, or (Megatron-core's blend_per_split)
// the split's own --train/valid/test-data-path whole, as a split string giving it every document.
struct SplitSource {
  DataBlend blend;  // no prefixes: no such split
  std::string split;
  bool own = false;  // the split's own path: it must be read (an error is the run's)
};
SplitSource source_of(const TrainArgs& a, DataSplit which) {
  static const char* kFlag[] = {"--train-data-path", "--valid-data-path", "--test-data-path"};
  static const char* kWhole[] = {"100,0,0", "0,100,0", "0,0,100"};
  if (a.split_data_path[0].empty()) return {parse_data_path(a.data_path), a.split, false};
  const std::vector<std::string>& path = a.split_data_path[size_t(which)];
  if (path.empty()) return {{}, kWhole[size_t(which)], true};
  DataBlend blend = parse_data_path(path, kFlag[size_t(which)]);
  // Megatron-core reads a per-split path of one prefix as that dataset alone, weight or not (no
  // blend, no surplus): as a lone unweighted --data-path prefix here.
  if (blend.prefixes.size() == 1) blend.weighted = false;
  return {blend, kWhole[size_t(which)], true};
}

// Builds the validation or test split with BUILD, or leaves it out with a line saying why (an
// empty test split: silently).
template <class Build>
void optional_split(const SplitSource& src, DataSplit which, bool say, Build build) {
  const char* name = which == DataSplit::kValid ? "validation" : "test";
  if (src.blend.prefixes.empty()) return;  // --train-data-path without this split's path: none, as in Megatron
  if (!split_has_share(src.split, which)) {
    if (say && which == DataSplit::kValid)
      std::fprintf(stderr, "[train] no validation: --split %s gives it no share\n", src.split.c_str());
    return;
  }
  try {
    build();
  } catch (const Error& e) {
    // A test split too small for one sample goes silently: small corpora with Megatron's default
    // --split (969,30,1) give it a document or none, and Megatron builds none for an empty range.
    // The split's own path (--valid-data-path, --test-data-path) was asked for: not readable is an
    // error, as the train split's is.
    const bool empty = dynamic_cast<const EmptySplit*>(&e) != nullptr;
    if (src.own && !empty) throw;
    if (say && !(empty && which == DataSplit::kTest)) std::fprintf(stderr, "[train] no %s: %s\n", name, e.what());
  }
}
}  // namespace

Datasets open_datasets(const TrainArgs& a, bool may_build, bool say) {
  const GptDatasetOptions dopt{a.seq_length, a.seed, a.data_cache_path};
  Datasets d;
  // Megatron's train samples: --train-samples itself, else --train-iters x --global-batch-size.
  // --skip-train: no train split, and one evaluation of each of the others (Megatron's sizes).
  const int64_t n_train = a.skip_train           ? 0
                          : a.train_samples > 0 ? a.train_samples
                                                : checked_mul(a.train_iters, a.global_batch, "--train-iters x --global-batch-size", 2);
  const char* what = "validation samples: the evaluations x --eval-iters x --eval-global-batch-size";
  const bool evaluate = a.eval_iters > 0 && (a.eval_interval > 0 || a.skip_train);
  // The evaluations at the multiples of --eval-interval from --start-eval-at-iter on, and the one
  // at the end of training. (Megatron subtracts start / interval, one too many when the start is a
  // multiple of the interval: its last evaluation would then run out of samples.)
  int64_t evaluations = 0;
  if (a.skip_train) {
    evaluations = 1;
  } else if (a.eval_interval > 0) {
    const int64_t first = std::max<int64_t>(1, (a.start_eval_at_iter + a.eval_interval - 1) / a.eval_interval);
    evaluations = std::max<int64_t>(0, a.train_iters / a.eval_interval - first + 1) + 1;
  }
  const int64_t n_valid =
      evaluate ? checked_mul(checked_mul(evaluations, a.eval_iters, what, 2), a.eval_gb(), what, 2) : 0;
  const int64_t n_test = evaluate ? checked_mul(a.eval_iters, a.eval_gb(), "--eval-iters x --eval-global-batch-size", 2) : 0;
  const SplitSource train_from = source_of(a, DataSplit::kTrain);
  if (a.instruction) {
    if (a.seed > 0xffffffffull) throw UsageError(fmt::format("--seed {}: expected 0 .. 2^32 - 1", a.seed));
    const SftOptions so{a.seq_length, uint32_t(a.seed), a.pack, 0};
    auto prefix_of = [&](const SplitSource& src) {
      if (src.blend.prefixes.size() != 1 || src.blend.weighted)
        throw UsageError("--data-path: --is-instruction-dataset takes one PREFIX_text_document (no weights). Hint: "
                         "preprocess the instruction corpora together into one dataset");
      return src.blend.prefixes[0];
    };
    if (n_train > 0) {
      d.sft_train = std::make_unique<SftDataset>(SftDataset::build(prefix_of(train_from), train_from.split,
                                                                   DataSplit::kTrain, n_train, so));
      d.train_src.sft = d.sft_train.get();
      if (say) describe(*d.sft_train, "train");
    }
    auto sft_split = [&](DataSplit which, int64_t n, std::unique_ptr<SftDataset>& ds, SampleSource& src) {
      const SplitSource from = source_of(a, which);
      const std::string prefix = from.blend.prefixes.empty() ? std::string() : prefix_of(from);
      optional_split(from, which, say, [&] {
        ds = std::make_unique<SftDataset>(SftDataset::build(prefix, from.split, which, n, so));
        src.sft = ds.get();
        if (say) describe(*ds, which == DataSplit::kValid ? "valid" : "test");
      });
    };
    if (n_valid > 0) sft_split(DataSplit::kValid, n_valid, d.sft_valid, d.valid_src);
    if (n_test > 0) sft_split(DataSplit::kTest, n_test, d.sft_test, d.test_src);
    return d;
  }
  if (n_train > 0) {
    d.train = std::make_unique<BlendedDataset>(
        BlendedDataset::build_or_load(train_from.blend, train_from.split, DataSplit::kTrain, n_train, dopt, may_build));
    d.train_src.gpt = d.train.get();
  }
  auto gpt_split = [&](DataSplit which, int64_t n, std::unique_ptr<BlendedDataset>& ds, SampleSource& src) {
    const SplitSource from = source_of(a, which);
    optional_split(from, which, say, [&] {
      ds = std::make_unique<BlendedDataset>(
          BlendedDataset::build_or_load(from.blend, from.split, which, n, dopt, may_build));
      src.gpt = ds.get();
    });
  };
  if (n_valid > 0) gpt_split(DataSplit::kValid, n_valid, d.valid, d.valid_src);
  if (n_test > 0) gpt_split(DataSplit::kTest, n_test, d.test, d.test_src);
  return d;
}

void order_samples(Datasets& d, const TrainArgs& a, int64_t dp) {
  SampleSource* src[3] = {&d.train_src, &d.valid_src, &d.test_src};
  const char* names[3] = {"the train split", "the validation split", "the test split"};
  for (size_t i = 0; i < 3; ++i) {
    if (!src[i]->gpt && !src[i]->sft) continue;
    d.orders[i] = std::make_unique<SampleOrder>(a.dataloader, a.data_sharding, src[i]->num_samples(),
                                                i == 0 ? a.micro_batch : a.eval_mbs(), dp, names[i]);
    src[i]->order = d.orders[i].get();
  }
}

}  // namespace cs
