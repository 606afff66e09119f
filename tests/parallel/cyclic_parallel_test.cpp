// --dataloader-type cyclic through the real binary: the order is Megatron's per data-parallel rank
// (data/sample_order.h, checked against Megatron's sampler in tests/data/sample_order_test.cpp), so
// layouts without data parallelism (TP2, PP2) train the same steps as one process, each within
// 1e-5, and so does DP2 with --no-data-sharding (its ranks stride through the one permutation a
// single process takes in order: each global batch holds the same samples); sharded, DP2 takes its
// ranks' own shards, other samples, and a DP2 run resumed halfway continues it exactly. The order
// is not single's.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "parallel_runs.h"

namespace cs {
namespace {

class CyclicParallel : public test::ParallelRuns {
 protected:
  int cyclic(int ranks, const std::string& name, int iters, const std::string& extra = "") {
    return train(ranks, name, iters, "--dataloader-type cyclic " + extra);
  }
  // Whether two runs' losses differ by more than their summation orders could make them (1e-5 is
  // what the layouts that take the same samples are held to) at some iteration.
  bool differ(const std::string& a, const std::string& b) {
    double most = 0;
    for (int64_t it = 1; it <= 6; ++it) most = std::max(most, std::fabs(loss(a, it) - loss(b, it)) / std::fabs(loss(a, it)));
    return most > 1e-4;
  }
  double loss(const std::string& name, int64_t it) {
    const test::Metrics m = test::read_metrics(dir_ + "/" + name + "/metrics.jsonl");
    EXPECT_TRUE(m.train.count(it)) << name << " iteration " << it;
    return m.train.count(it) ? m.train.at(it) : 0.0;
  }
};

TEST_P(CyclicParallel, LayoutsWithoutDataParallelismTrainAsOneProcess) {
  ASSERT_EQ(0, cyclic(0, "one", 6)) << "see " << dir_ << "/one.log";
  ASSERT_EQ(0, train(0, "single", 6)) << "see " << dir_ << "/single.log";
  EXPECT_TRUE(differ("one", "single")) << "the cyclic order took the samples in order";
  ASSERT_EQ(0, cyclic(2, "tp2", 6, "--tensor-model-parallel-size 2")) << "see " << dir_ << "/tp2.log";
  expect_same_losses("one", "tp2", 1, 6);
  ASSERT_EQ(0, cyclic(2, "pp2", 6, "--pipeline-model-parallel-size 2")) << "see " << dir_ << "/pp2.log";
  expect_same_losses("one", "pp2", 1, 6);
}

TEST_P(CyclicParallel, DataParallelRanksTakeTheirShardsOrStrideAndResumeExactly) {
  ASSERT_EQ(0, cyclic(2, "dp2", 6)) << "see " << dir_ << "/dp2.log";
  ASSERT_EQ(0, cyclic(0, "one", 6)) << "see " << dir_ << "/one.log";
  EXPECT_TRUE(differ("dp2", "one")) << "DP2 took one process's order, not its ranks' shards";
  ASSERT_EQ(0, cyclic(2, "unsharded", 6, "--no-data-sharding")) << "see " << dir_ << "/unsharded.log";
  expect_same_losses("one", "unsharded", 1, 6);
  // Stopped halfway (the same run: its data, and so its order, are sized by --train-iters), then on
  // from the checkpoint: every iteration as in the run straight through.
  ASSERT_EQ(0, cyclic(2, "resumed", 6, "--exit-interval 3")) << "see " << dir_ << "/resumed.log";
  ASSERT_EQ(0, cyclic(2, "resumed", 6, "--load " + dir_ + "/resumed")) << "see " << dir_ << "/resumed.log";
  expect_same_losses("dp2", "resumed", 1, 6, 0.0);
}

INSTANTIATE_TEST_SUITE_P(Positions, CyclicParallel, ::testing::Values("rope"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace cs
