// SampleOrder against Megatron-LM's own samplers (tests/fixtures/cyclic/megatron_cyclic.json,
// written by tools/fixtures/make_cyclic_fixture.py): every rank's micro-batches under
// --dataloader-type cyclic, several epochs deep, with and without data sharding and from resumed
// runs' consumed samples; torch_randperm against torch.randperm on both of its paths; the
// single order; and the refusals.
#include "data/sample_order.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace cs {
namespace {

nlohmann::json fixture() {
  std::ifstream f(std::string(CS_SOURCE_DIR) + "/tests/fixtures/cyclic/megatron_cyclic.json");
  EXPECT_TRUE(f.good()) << "missing megatron_cyclic.json; run tools/fixtures/make_cyclic_fixture.py";
  return nlohmann::json::parse(f);
}

TEST(TorchRandperm, EqualsTorch) {
  const nlohmann::json j = fixture();
  ASSERT_GE(j["randperm"].size(), 5u);
  for (const auto& c : j["randperm"]) {
    const auto want = c["perm"].get<std::vector<int64_t>>();
    EXPECT_EQ(torch_randperm(c["n"].get<int64_t>(), c["seed"].get<uint64_t>()), want)
        << "n " << c["n"] << " seed " << c["seed"];
  }
}

// n >= 2^32 / 20 takes torch's other path (inside-out shuffle on 64-bit draws): 1.7 GB of indices.
TEST(TorchRandperm, LargeNEqualsTorch) {
  const nlohmann::json c = fixture()["randperm_big"];
  const int64_t n = c["n"].get<int64_t>();
  ASSERT_EQ(n, int64_t(UINT32_MAX / 20) + 1);
  const std::vector<int64_t> perm = torch_randperm(n, c["seed"].get<uint64_t>());
  ASSERT_EQ(int64_t(perm.size()), n);
  for (size_t i = 0; i < c["at"].size(); ++i)
    EXPECT_EQ(perm[c["at"][i].get<size_t>()], c["values"][i].get<int64_t>()) << "at " << c["at"][i];
}

TEST(SampleOrder, CyclicEqualsMegatronsSamplerOnEveryRank) {
  const nlohmann::json j = fixture();
  ASSERT_GE(j["cases"].size(), 8u);
  int unsharded = 0, resumed = 0, multi_epoch = 0;
  for (const auto& c : j["cases"]) {
    const int64_t total = c["total"], mbs = c["micro_batch"], dp = c["dp"], consumed = c["consumed"];
    const bool sharding = c["data_sharding"];
    unsharded += !sharding;
    resumed += consumed > 0;
    const SampleOrder order(DataloaderType::kCyclic, sharding, total, mbs, dp);
    ASSERT_EQ(int64_t(c["ranks"].size()), dp);
    const int64_t micro = int64_t(c["ranks"][0].size());
    multi_epoch += (consumed + micro * mbs * dp) > 2 * (total - total % (mbs * dp));
    // The run takes the micro-batch steps in turn, every rank its own share of each.
    for (int64_t k = 0; k < micro; ++k)
      for (int64_t r = 0; r < dp; ++r)
        for (int64_t i = 0; i < mbs; ++i) {
          const int64_t p = consumed + k * mbs * dp + r * mbs + i;
          ASSERT_EQ(order.index(p), c["ranks"][size_t(r)][size_t(k)][size_t(i)].get<int64_t>())
              << "total " << total << " mbs " << mbs << " dp " << dp << " sharding " << sharding << " consumed "
              << consumed << ": rank " << r << " micro-batch " << k << " sample " << i;
        }
  }
  EXPECT_GE(unsharded, 2);
  EXPECT_GE(resumed, 3);
  EXPECT_GE(multi_epoch, 3);
}

TEST(SampleOrder, EachEpochIsAPermutationOfTheActiveSamples) {
  const SampleOrder order(DataloaderType::kCyclic, true, 103, 4, 3);  // active 96
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    std::vector<int64_t> seen;
    for (int64_t p = epoch * 96; p < (epoch + 1) * 96; ++p) seen.push_back(order.index(p));
    std::sort(seen.begin(), seen.end());
    for (int64_t i = 0; i < 96; ++i) ASSERT_EQ(seen[size_t(i)], i) << "epoch " << epoch;
  }
  // A different epoch, a different order; going back to an earlier epoch gives the same one again.
  std::vector<int64_t> e0, e1, again;
  for (int64_t p = 0; p < 96; ++p) e0.push_back(order.index(p));
  for (int64_t p = 96; p < 192; ++p) e1.push_back(order.index(p));
  for (int64_t p = 0; p < 96; ++p) again.push_back(order.index(p));
  EXPECT_NE(e0, e1);
  EXPECT_EQ(e0, again);
}

TEST(SampleOrder, SingleIsThePositionModuloTheSize) {
  const SampleOrder order(DataloaderType::kSingle, true, 10, 2, 3);
  EXPECT_EQ(order.index(0), 0);
  EXPECT_EQ(order.index(9), 9);
  EXPECT_EQ(order.index(23), 3);
}

TEST(SampleOrder, RefusesWhatMegatronCannotRun) {
  try {
    SampleOrder(DataloaderType::kCyclic, true, 5, 2, 3, "the validation split");
    FAIL() << "a dataset smaller than a micro-batch step";
  } catch (const UsageError&) {
    FAIL() << "a data condition, not a usage error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the validation split has 5 samples"), std::string::npos) << e.what();
  }
  // Without sharding the ranks stride through (N / mbs) x mbs samples. 51 with mbs 3 and DP 4
  // leaves 3 beyond the 48 active ones, less than a micro-batch for rank 0 (the fixture's cases run
  // such orders several epochs deep); 54 with mbs 2 and DP 4 leaves 6, two for rank 0: a whole
  // micro-batch, so Megatron's ranks fall out of step at the end of the first epoch.
  EXPECT_NO_THROW(SampleOrder(DataloaderType::kCyclic, false, 51, 3, 4).index(200));
  const SampleOrder skewed(DataloaderType::kCyclic, false, 54, 2, 4, "the train split");
  EXPECT_NO_THROW(skewed.index(47));
  try {
    (void)skewed.index(48);
    FAIL() << "ranks out of step";
  } catch (const UsageError&) {
    FAIL() << "a run-time condition, not a usage error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--no-data-sharding: the run has taken the 48 active samples of the train "
                                         "split (54 in all"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(SampleOrder(DataloaderType::kCyclic, true, 54, 2, 4).index(48));
  EXPECT_NO_THROW(SampleOrder(DataloaderType::kSingle, true, 1, 2, 3));
}

}  // namespace
}  // namespace cs
