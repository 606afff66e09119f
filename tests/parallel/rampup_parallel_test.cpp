// --rampup-batch-size in every parallel layout, through the real binary under mpirun: the global
// batch grows from 4 to 8 samples (1 then 2 micro-batches per data-parallel rank, 2 then 4 per
// pipeline) and DP2 with the distributed optimizer, TP2 x DP2, PP2 and interleaved PP2 train the
// same steps as one process (every iteration's loss, parameter norm and validation loss within
// 1e-5 relative); the log line shows each iteration's global batch, as Megatron's does.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "parallel_runs.h"

namespace cs {
namespace {

class RampupParallel : public test::ParallelRuns {
 protected:
  void SetUp() override {
    test::ParallelRuns::SetUp();
    if (IsSkipped()) return;
    // Sample-based: 72 samples are 4 x 4 + 8 in the rampup's 5 iterations, then 6 of 8.
    const std::string iters_warmup = "--lr-warmup-iters 2";
    flags_.replace(flags_.find(iters_warmup), iters_warmup.size(), "--lr-warmup-samples 8");
  }
  int ramped(int ranks, const std::string& name, const std::string& extra = "") {
    return train_with(ranks, name, "--train-samples 72 --rampup-batch-size 4 4 16 " + extra);
  }
};

std::vector<int> logged_batches(const std::string& log) {
  std::ifstream f(log);
  std::vector<int> out;
  const std::regex batch("global batch size: +([0-9]+) \\|");
  std::smatch m;
  for (std::string line; std::getline(f, line);)
    if (std::regex_search(line, m, batch)) out.push_back(std::stoi(m[1]));
  return out;
}

TEST_P(RampupParallel, EveryLayoutTrainsTheRampAsOneProcess) {
  ASSERT_EQ(0, ramped(0, "one")) << "see " << dir_ << "/one.log";
  EXPECT_EQ(logged_batches(dir_ + "/one.log"), (std::vector<int>{4, 4, 4, 4, 8, 8, 8, 8, 8, 8, 8}));
  ASSERT_EQ(0, ramped(2, "dp2", "--use-distributed-optimizer")) << "see " << dir_ << "/dp2.log";
  expect_same_losses("one", "dp2", 1, 11);
  ASSERT_EQ(0, ramped(4, "tp2dp2", "--tensor-model-parallel-size 2")) << "see " << dir_ << "/tp2dp2.log";
  expect_same_losses("one", "tp2dp2", 1, 11);
  ASSERT_EQ(0, ramped(2, "pp2", "--pipeline-model-parallel-size 2")) << "see " << dir_ << "/pp2.log";
  expect_same_losses("one", "pp2", 1, 11);
  ASSERT_EQ(0, ramped(2, "pp2v", "--pipeline-model-parallel-size 2 --num-layers-per-virtual-pipeline-stage 1"))
      << "see " << dir_ << "/pp2v.log";
  expect_same_losses("one", "pp2v", 1, 11);
}

// A batch of the rampup that does not split over the ranks is refused before training starts.
TEST_P(RampupParallel, ABatchThatDoesNotSplitIsRefused) {
  ASSERT_EQ(2, train_with(2, "bad", "--train-samples 72 --rampup-batch-size 2 2 16")) << "see " << dir_ << "/bad.log";
  std::ifstream f(dir_ + "/bad.log");
  const std::string log((std::istreambuf_iterator<char>(f)), {});
  EXPECT_NE(log.find("its global batch 2 is not a multiple of --micro-batch-size 2 x data-parallel size 2"),
            std::string::npos) << log;
}

INSTANTIATE_TEST_SUITE_P(Positions, RampupParallel, ::testing::Values("rope"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace cs
