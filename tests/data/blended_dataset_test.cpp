// Blending: --data-path parsing and its errors, Megatron's greedy blending indices (a hand case and
// the within-one-sample property), the 1.005 surplus, and a blended dataset whose samples come
// from the dataset its indices name, cached and mapped again unchanged.
#include "data/blended_dataset.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "data/gpt_test_util.h"
#include "data/mmidx_test_util.h"

namespace cs {
namespace {

using testing::ElementsAre;
using testing::HasSubstr;
using namespace cs::test;

TEST(DataPath, ParsesOnePrefixOrWeightedPairs) {
  DataBlend one = parse_data_path({"A_text_document"});
  EXPECT_THAT(one.weights, ElementsAre(1.0));
  EXPECT_THAT(one.prefixes, ElementsAre("A_text_document"));
  EXPECT_FALSE(one.weighted);
  EXPECT_TRUE(parse_data_path({"1", "A_text_document"}).weighted);
  DataBlend two = parse_data_path({"0.3", "A", "0.7", "B"});
  EXPECT_THAT(two.prefixes, ElementsAre("A", "B"));
  EXPECT_NEAR(two.weights[0], 0.3, 1e-15);
  EXPECT_NEAR(two.weights[1], 0.7, 1e-15);
  DataBlend unnormalised = parse_data_path({"3", "A", "7", "B", "10", "C"});
  EXPECT_THAT(unnormalised.weights, ElementsAre(0.15, 0.35, 0.5));
}

TEST(DataPath, BadFormsAreClearErrors) {
  auto err = [](std::vector<std::string> v) { return error_of([&] { parse_data_path(v); }); };
  EXPECT_THAT(err({}), HasSubstr("--data-path: got no values"));
  EXPECT_THAT(err({"0.3"}), HasSubstr("got only the weight 0.3, expected a dataset prefix"));
  EXPECT_THAT(err({"0.3", "A", "0.7"}), HasSubstr("got 3 values, expected WEIGHT PREFIX pairs"));
  EXPECT_THAT(err({"A", "B"}), HasSubstr("got \"A\" where a weight was expected"));
  EXPECT_THAT(err({"-0.3", "A", "1.3", "B"}), HasSubstr("weight -0.3 of A is negative"));
  EXPECT_THAT(err({"0", "A", "1", "B"}), HasSubstr("weight 0 of A, expected > 0"));
  EXPECT_THAT(err({"0.3", "0.7", "A", "B"}), HasSubstr("got the number 0.7 after weight 0.3"));
  EXPECT_THAT(err({"nan", "A", "1", "B"}), HasSubstr("got \"nan\" where a weight was expected"));
  EXPECT_THAT(err({"0.3"}), HasSubstr("Hint: pass one dataset prefix, or WEIGHT PREFIX pairs"));
}

TEST(Blending, HandCase) {
  // Worked by hand from helpers.cpp: at sample i pick argmax of w * max(i, 1) - count.
  std::vector<double> w = {0.3, 0.7};
  std::vector<int16_t> d(10);
  std::vector<int64_t> s(10);
  build_blending_indices(w, 10, d.data(), s.data());
  EXPECT_THAT(d, ElementsAre(1, 0, 1, 1, 0, 1, 1, 0, 1, 1));
  EXPECT_THAT(s, ElementsAre(0, 0, 1, 2, 1, 3, 4, 2, 5, 6));
}

TEST(Blending, FractionsStayWithinOneSampleOfTheWeights) {
  std::vector<double> w = {0.2, 0.5, 0.3};
  const int64_t n = 10000;
  std::vector<int16_t> d(n);
  std::vector<int64_t> s(n);
  build_blending_indices(w, n, d.data(), s.data());
  std::vector<int64_t> count(3, 0);
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_EQ(s[size_t(i)], count[size_t(d[size_t(i)])]) << i;
    count[size_t(d[size_t(i)])]++;
    for (size_t k = 0; k < 3; ++k)
      ASSERT_LE(std::abs(double(count[k]) - w[k] * double(i + 1)), 1.0) << "dataset " << k << " at " << i;
  }
  EXPECT_THAT(count, ElementsAre(2000, 5000, 3000));
}

TEST(Blending, SurplusPerDataset) {
  std::vector<double> w = {0.3, 0.7};
  // Megatron-core: ceil(ceil(N * w) * 1.005).
  EXPECT_THAT(blend_samples_per_dataset(w, 1000, 0.005), ElementsAre(302, 704));  // ceil(301.5), ceil(703.5)
  EXPECT_THAT(blend_samples_per_dataset(w, 0, 0.005), ElementsAre(0, 0));
  // 7 * 0.3 = 2.1 -> 3 -> ceil(3.015) = 4 (the legacy ceil(7 * 0.3 * 1.005) gave 3).
  EXPECT_THAT(blend_samples_per_dataset(w, 7, 0.005), ElementsAre(4, 6));
  // Without surplus: the blend's targets, whose sum (8) is what a blend of 7 samples holds.
  EXPECT_THAT(blend_samples_per_dataset(w, 7, 0.0), ElementsAre(3, 5));
}

GptDatasetOptions opts(int64_t seq_length, uint64_t seed = 1234) {
  GptDatasetOptions o;
  o.seq_length = seq_length;
  o.seed = seed;
  return o;
}

TEST(BlendedDataset, SamplesComeFromTheNamedDatasetInProportion) {
  std::string dir = fresh_dir("blend");
  // Tokens of A are < 100000, tokens of B are >= 100000.
  std::string a = write_unique_dataset(dir, "A", irregular_lengths(30));
  std::string b = write_unique_dataset(dir, "B", irregular_lengths(50), 100000);
  DataBlend blend = parse_data_path({"0.3", a, "0.7", b});
  const int64_t n = 200;
  BlendedDataset ds = BlendedDataset::build_or_load(blend, "90,10,0", DataSplit::kTrain, n, opts(4), true);
  EXPECT_TRUE(ds.built_cache());
  ASSERT_EQ(ds.num_samples(), n);  // ceil(200 * 0.3) + ceil(200 * 0.7)
  ASSERT_EQ(ds.datasets().size(), 2u);
  EXPECT_GE(ds.datasets()[0].num_samples(), 61);   // ceil(ceil(200 * 0.3) * 1.005)
  EXPECT_GE(ds.datasets()[1].num_samples(), 141);  // ceil(ceil(200 * 0.7) * 1.005)
  std::vector<int32_t> got(5), want(5);
  int64_t from_a = 0;
  for (int64_t i = 0; i < n; ++i) {
    auto [d, k] = ds.source(i);
    ds.sample(i, got.data());
    ds.datasets()[size_t(d)].sample(k, want.data());
    ASSERT_EQ(got, want) << i;
    for (int32_t t : got) ASSERT_EQ(t >= 100000, d == 1) << i;
    from_a += d == 0;
    EXPECT_LE(std::abs(double(from_a) - 0.3 * double(i + 1)), 1.0) << i;
  }
  // Mapped again (a rank that may not build): identical samples, nothing rebuilt.
  BlendedDataset again = BlendedDataset::build_or_load(blend, "90,10,0", DataSplit::kTrain, n, opts(4), false);
  EXPECT_FALSE(again.built_cache());
  for (int64_t i = 0; i < n; ++i) {
    ds.sample(i, got.data());
    again.sample(i, want.data());
    ASSERT_EQ(got, want) << i;
  }
  // The valid split is other documents of both datasets.
  BlendedDataset valid = BlendedDataset::build_or_load(blend, "90,10,0", DataSplit::kValid, 20, opts(4), true);
  EXPECT_EQ(valid.num_samples(), 20);
  EXPECT_NE(valid.datasets()[0].cache_base(), ds.datasets()[0].cache_base());
}

TEST(BlendedDataset, OnePrefixPassesThrough) {
  std::string dir = fresh_dir("blend_one");
  std::string a = write_unique_dataset(dir, "A", irregular_lengths(30));
  BlendedDataset ds = BlendedDataset::build_or_load(parse_data_path({a}), "100,0,0", DataSplit::kTrain,
                                                    10, opts(4), true);
  ASSERT_EQ(ds.datasets().size(), 1u);
  EXPECT_EQ(ds.num_samples(), ds.datasets()[0].num_samples());
  std::vector<int32_t> got(5), want(5);
  ds.sample(3, got.data());
  ds.datasets()[0].sample(3, want.data());
  EXPECT_EQ(got, want);
  // With a weight, Megatron-core builds a one-dataset blend: exactly 10 samples, drawn in order
  // from the dataset built for ceil(10 * 1.005) = 11.
  BlendedDataset w = BlendedDataset::build_or_load(parse_data_path({"1", a}), "100,0,0",
                                                   DataSplit::kTrain, 10, opts(4), true);
  ASSERT_EQ(w.datasets().size(), 1u);
  EXPECT_EQ(w.num_samples(), 10);
  for (int64_t i = 0; i < 10; ++i) EXPECT_EQ(w.source(i), (std::pair<int, int64_t>(0, i)));
}

TEST(BlendedDataset, EmptySplitOfOneDatasetIsAClearError) {
  std::string dir = fresh_dir("blend_empty");
  std::string a = write_unique_dataset(dir, "A", irregular_lengths(100));
  std::string b = write_unique_dataset(dir, "B", irregular_lengths(10));
  DataBlend blend = parse_data_path({"0.5", a, "0.5", b});
  // 90,5,5 gives A (100 documents) test [95, 100) but B (10 documents) [10, 10): the running
  // sum 0.95 * 10 = 9.5 rounds to the even 10.
  EXPECT_THAT(error_of([&] {
                BlendedDataset::build_or_load(blend, "90,5,5", DataSplit::kTest, 10, opts(4), true);
              }),
              testing::AllOf(HasSubstr("B_text_document: documents [10, 10) hold 0 tokens"),
                             HasSubstr("give the split a larger --split share")));
}

}  // namespace
}  // namespace cs
