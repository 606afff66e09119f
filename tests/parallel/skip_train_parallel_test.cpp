// --skip-train in the parallel layouts, through the real binary under mpirun: DP2, TP2 and PP2
// evaluate the same new model (from --seed) on the same validation and test samples as one process,
// within 1e-5, and every rank finishes (the evaluations are collectives); so does DP2 with
// --eval-micro-batch-size 1.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "parallel_runs.h"

namespace cs {
namespace {

class SkipTrainParallel : public test::ParallelRuns {};

// The validation and test losses printed in dir/name.log.
std::vector<double> losses(const std::string& log) {
  std::ifstream f(log);
  const std::string text((std::istreambuf_iterator<char>(f)), {});
  std::vector<double> out;
  const std::regex line("validation loss at iteration 0 on (validation|test) set \\| lm loss value: ([0-9.E+-]+)");
  for (std::sregex_iterator it(text.begin(), text.end(), line), end; it != end; ++it) out.push_back(std::stod((*it)[2]));
  return out;
}

TEST_P(SkipTrainParallel, EveryLayoutEvaluatesAsOneProcess) {
  const std::string flags = "--skip-train --eval-iters 2 --split 50,40,10 --seed 7";
  ASSERT_EQ(0, train_with(0, "one", flags)) << "see " << dir_ << "/one.log";
  const std::vector<double> want = losses(dir_ + "/one.log");
  ASSERT_EQ(want.size(), 2u) << "see " << dir_ << "/one.log";
  for (const auto& [name, layout] : std::vector<std::pair<std::string, std::string>>{
           {"dp2", ""}, {"tp2", "--tensor-model-parallel-size 2"}, {"pp2", "--pipeline-model-parallel-size 2"},
           // The same samples in micro-batches of one (every sample counts the same targets).
           {"dp2_eval_mbs1", "--eval-micro-batch-size 1"}}) {
    ASSERT_EQ(0, train_with(2, name, flags + " " + layout)) << "see " << dir_ << "/" << name << ".log";
    const std::vector<double> got = losses(dir_ + "/" + name + ".log");
    if (name == "dp2_eval_mbs1") {  // the evaluation as the run names it: the global batch of 8 in micro-batches of 1
      std::ifstream f(dir_ + "/" + name + ".log");
      const std::string log((std::istreambuf_iterator<char>(f)), {});
      EXPECT_NE(log.find("(8 micro-batches of 1 over 2 data-parallel ranks)"), std::string::npos) << log;
    }
    ASSERT_EQ(got.size(), 2u) << name;
    for (size_t i = 0; i < 2; ++i) EXPECT_NEAR(got[i], want[i], 1e-5 * want[i]) << name << (i ? " test" : " validation");
  }
}

INSTANTIATE_TEST_SUITE_P(Positions, SkipTrainParallel, ::testing::Values("rope"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace cs
