// NumpyRandomState against numbers numpy itself produced (tests/fixtures/megatron_indices/
// numpy_random.json, written by tools/reference/megatron_indices.py): the raw MT19937 stream for
// several seeds, successive RandomState.shuffle results from one state (what Megatron's document
// and shuffle indices consume), and bounded draws above 2^32 (the 64-bit path's high/low order);
// and numpy_sum against numpy.sum's pairwise order.
#include "data/numpy_random.h"

#include <gtest/gtest.h>

#include <fstream>
#include <numeric>
#include <nlohmann/json.hpp>

namespace cs {
namespace {

nlohmann::json fixture() {
  std::ifstream f(std::string(CS_SOURCE_DIR) + "/tests/fixtures/megatron_indices/numpy_random.json");
  EXPECT_TRUE(f.good()) << "missing numpy_random.json; run tools/reference/megatron_indices.py";
  return nlohmann::json::parse(f);
}

TEST(NumpyRandom, RawStreamEqualsNumpy) {
  nlohmann::json j = fixture();
  ASSERT_GE(j["raw"].size(), 4u);
  for (const auto& c : j["raw"]) {
    NumpyRandomState rng(c["seed"].get<uint32_t>());
    const auto& want = c["values"];
    ASSERT_GT(want.size(), 624u);  // past the first state regeneration
    for (size_t i = 0; i < want.size(); ++i)
      ASSERT_EQ(rng.next_uint32(), want[i].get<uint32_t>()) << "seed " << c["seed"] << " draw " << i;
  }
}

TEST(NumpyRandom, SuccessiveShufflesEqualNumpy) {
  nlohmann::json j = fixture();
  for (const auto& c : j["shuffles"]) {
    NumpyRandomState rng(c["seed"].get<uint32_t>());
    for (size_t k = 0; k < c["sizes"].size(); ++k) {
      const int64_t n = c["sizes"][k].get<int64_t>();
      // Alternate element types as Megatron does (int32 document index, int64 shuffle index).
      std::vector<int64_t> got(static_cast<size_t>(n));
      if (k % 2 == 0) {
        std::vector<int32_t> a(static_cast<size_t>(n));
        std::iota(a.begin(), a.end(), 0);
        rng.shuffle(a.data(), n);
        got.assign(a.begin(), a.end());
      } else {
        std::iota(got.begin(), got.end(), int64_t(0));
        rng.shuffle(got.data(), n);
      }
      EXPECT_EQ(got, c["results"][k].get<std::vector<int64_t>>())
          << "seed " << c["seed"] << " shuffle " << k << " of " << n;
    }
  }
}

TEST(NumpyRandom, IntervalsAbove32BitsEqualNumpy) {
  nlohmann::json j = fixture();
  for (const auto& c : j["intervals"]) {
    NumpyRandomState rng(c["seed"].get<uint32_t>());
    for (size_t k = 0; k < c["maxes"].size(); ++k)
      EXPECT_EQ(rng.random_interval(c["maxes"][k].get<uint64_t>()), c["values"][k].get<uint64_t>())
          << "seed " << c["seed"] << " max " << c["maxes"][k];
  }
}

TEST(NumpyRandom, SumFollowsNumpysPairwiseOrder) {
  // Below 8 elements left to right: (0.1 + 0.2) + 0.3 = 0.6000000000000001, not 0.6.
  std::vector<double> three = {0.1, 0.2, 0.3};
  EXPECT_EQ(numpy_sum(three), (0.1 + 0.2) + 0.3);
  EXPECT_NE(numpy_sum(three), 0.1 + (0.2 + 0.3));
  // From 8 on, eight partial sums combined pairwise: numpy.sum([0.1] * 8) is 0.8, while left to
  // right gives 0.7999999999999999.
  std::vector<double> eight(8, 0.1);
  double serial = 0;
  for (double x : eight) serial += x;
  EXPECT_EQ(numpy_sum(eight), 0.8);
  EXPECT_EQ(serial, 0.7999999999999999);
  // Above 128, halves (64 + 66 and 128 + 172 here), as numpy.sum gives.
  std::vector<double> many(130, 0.1);
  EXPECT_EQ(numpy_sum(many), 12.999999999999998);
  EXPECT_EQ(numpy_sum(std::vector<double>(300, 0.1)), 29.999999999999996);
}

}  // namespace
}  // namespace cs
