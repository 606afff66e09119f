// ChuanSpeed's GPT dataset indices against Megatron-core's, for the same corpora, --split, seed,
// sequence length and sample counts: tests/fixtures/megatron_indices/cases.json was written by
// tools/reference/megatron_indices.py, which runs Megatron-core's own BlendedMegatronDatasetBuilder
// and GPTDataset on real MMIDIDX files. For every split of every case: the split's document range,
// the document, sample and shuffle indices of every dataset and the blending indices are equal
// element for element (the cases cover one to many epochs, separate and shared final epochs,
// several seeds and splits, an empty test split, and blends of one to three weighted datasets).
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "data/blended_dataset.h"
#include "data/gpt_dataset.h"
#include "data/gpt_test_util.h"

namespace cs {
namespace {

using nlohmann::json;

json cases() {
  std::ifstream f(std::string(CS_SOURCE_DIR) + "/tests/fixtures/megatron_indices/cases.json");
  EXPECT_TRUE(f.good()) << "missing cases.json; run tools/reference/megatron_indices.py";
  return json::parse(f)["cases"];
}

template <typename T>
std::vector<int64_t> widen(std::span<const T> s) {
  return std::vector<int64_t>(s.begin(), s.end());
}

void check_case(const json& c) {
  const std::string name = c["name"], split = c["split"];
  SCOPED_TRACE(name);
  const std::string dir = test::fresh_dir("megatron_" + name);
  std::vector<std::string> args;
  std::vector<int64_t> num_docs;
  for (size_t d = 0; d < c["lengths"].size(); ++d) {
    std::vector<int32_t> lengths = c["lengths"][d];
    num_docs.push_back(int64_t(lengths.size()));
    if (!c["weights"].is_null()) args.push_back(c["weights"][d].dump());
    args.push_back(test::write_unique_dataset(dir, "d" + std::to_string(d), lengths));
  }
  const DataBlend blend = parse_data_path(args);
  GptDatasetOptions opt;
  opt.seq_length = c["seq_length"];
  opt.seed = c["seed"];
  for (int k = 0; k < 3; ++k) {
    SCOPED_TRACE("split " + std::to_string(k));
    const json& want = c["splits"][size_t(k)];
    if (want.is_null()) {  // a weight-0 split: Megatron builds nothing, ChuanSpeed's range is empty
      for (int64_t n : num_docs) {
        auto b = split_boundaries(split, n);
        EXPECT_EQ(b[size_t(k)], b[size_t(k) + 1]);
      }
      continue;
    }
    BlendedDataset got = BlendedDataset::build_or_load(blend, split, DataSplit(k),
                                                       c["sizes"][size_t(k)], opt, true);
    EXPECT_EQ(got.num_samples(), want["size"].get<int64_t>());
    ASSERT_EQ(got.datasets().size(), want["datasets"].size());
    for (size_t d = 0; d < got.datasets().size(); ++d) {
      SCOPED_TRACE("dataset " + std::to_string(d));
      const json& w = want["datasets"][d];
      const GptDataset& g = got.datasets()[d];
      auto b = split_boundaries(split, num_docs[d]);
      EXPECT_EQ(b[size_t(k)], w["begin"].get<int64_t>());
      EXPECT_EQ(b[size_t(k) + 1], w["end"].get<int64_t>());
      EXPECT_EQ(widen(g.doc_idx()), w["document_index"].get<std::vector<int64_t>>());
      EXPECT_EQ(widen(g.sample_idx()), w["sample_index"].get<std::vector<int64_t>>());
      EXPECT_EQ(widen(g.shuffle_idx()), w["shuffle_index"].get<std::vector<int64_t>>());
    }
    if (want["blend"].is_null()) {
      EXPECT_EQ(got.datasets().size(), 1u);
      continue;
    }
    std::vector<int64_t> ds = want["blend"]["dataset_index"], ks = want["blend"]["dataset_sample_index"];
    ASSERT_EQ(int64_t(ds.size()), got.num_samples());
    for (int64_t i = 0; i < got.num_samples(); ++i) {
      auto [d, s] = got.source(i);
      ASSERT_EQ(d, ds[size_t(i)]) << "blended sample " << i;
      ASSERT_EQ(s, ks[size_t(i)]) << "blended sample " << i;
    }
  }
}

TEST(MegatronIndices, EveryFixtureCaseEqualsMegatronCore) {
  json all = cases();
  ASSERT_GE(all.size(), 10u);
  for (const json& c : all) check_case(c);
}

TEST(MegatronIndices, FixtureCoversWhatItClaims) {
  // So that the equality above means something: several seeds give different orders, some
  // splits need many epochs, some keep the final epoch apart and some do not (by Megatron's rule,
  // gpt_separate_last_epoch, whose effect on the indices the equality test checks).
  json all = cases();
  std::set<uint64_t> seeds;
  int many_epochs = 0, blends = 0, separate = 0, together = 0;
  for (const json& c : all) {
    seeds.insert(c["seed"].get<uint64_t>());
    const int64_t seq = c["seq_length"];
    for (const json& s : c["splits"]) {
      if (s.is_null()) continue;
      blends += !s["blend"].is_null();
      for (size_t d = 0; d < s["datasets"].size(); ++d) {
        const json& g = s["datasets"][d];
        const int64_t begin = g["begin"], end = g["end"];
        const int64_t epochs = int64_t(g["document_index"].size()) / (end - begin);
        many_epochs += epochs >= 3;
        if (epochs < 2) continue;
        std::vector<int64_t> lengths = c["lengths"][d];
        int64_t tokens = 0;
        for (int64_t k = begin; k < end; ++k) tokens += lengths[size_t(k)];
        (gpt_separate_last_epoch(tokens, seq, g["num_samples_requested"], epochs) ? separate : together)++;
      }
    }
  }
  EXPECT_GE(seeds.size(), 5u);
  EXPECT_GE(many_epochs, 5);
  EXPECT_GE(blends, 6);
  EXPECT_GE(separate, 5);
  EXPECT_GE(together, 3);
  // Same corpus and request, different seeds: different document and shuffle orders.
  auto find = [&](const std::string& n) {
    for (const json& c : all)
      if (c["name"] == n) return c["splits"][0]["datasets"][0];
    ADD_FAILURE() << n;
    return json();
  };
  EXPECT_NE(find("one_epoch")["document_index"], find("seed_1")["document_index"]);
  EXPECT_NE(find("one_epoch")["shuffle_index"], find("seed_max")["shuffle_index"]);
  EXPECT_EQ(find("one_epoch")["sample_index"].size(), find("seed_1")["sample_index"].size());
}

TEST(MegatronIndices, SeedOutsideNumpysRangeIsAUsageError) {
  const std::string dir = test::fresh_dir("megatron_seed");
  auto data = std::make_shared<const IndexedDataset>(
      test::write_unique_dataset(dir, "d", test::irregular_lengths(20)));
  GptDatasetOptions opt;
  opt.seq_length = 4;
  opt.seed = uint64_t(1) << 32;
  EXPECT_THROW(GptDataset::build_or_load(data, 0, 20, 5, opt, true), UsageError);
  opt.seed = 0xffffffffull;
  EXPECT_NO_THROW(GptDataset::build_or_load(data, 0, 20, 5, opt, true));
}

}  // namespace
}  // namespace cs
