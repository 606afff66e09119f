// Instruction fine-tuning (--is-instruction-dataset, packed) under every kind of parallelism,
// through the real binary under mpirun: data parallelism (each rank counts the whole global
// batch's trained tokens, so the per-token loss is the same), tensor parallelism with sequence
// parallelism (segments and positions reach every rank's attention over the gathered sequence)
// and pipeline parallelism, plain and interleaved (every stage and model chunk gets the
// micro-batch's segments) train the same steps as
// one process, every iteration's loss and the validation loss within 1e-5 relative.
#include <gtest/gtest.h>

#include <random>

#include "data/sft_test_util.h"
#include "parallel_runs.h"

namespace cs {
namespace {

class SftParallel : public test::ParallelRuns {
 protected:
  void SetUp() override {
    ParallelRuns::SetUp();
    if (IsSkipped()) return;
    // 200 samples: 3-9 random prompt tokens (context), 2-4 answer tokens (trained).
    const std::string text = dir_ + "/qa_text_document";
    std::mt19937 rng(5);
    test::write_sft_dataset(text, 200, [&](int, std::vector<int32_t>& ids, std::vector<int32_t>& mask) {
      const int prompt = 3 + int(rng() % 7), answer = 2 + int(rng() % 3);
      for (int i = 0; i < prompt + answer; ++i) {
        ids.push_back(3 + int32_t(rng() % 90));
        mask.push_back(i >= prompt);
      }
    });
    const std::string synth = "--data-path " + dir_ + "/data";
    flags_.replace(flags_.find(synth), synth.size(),
                   "--data-path " + text + " --is-instruction-dataset --reset-attention-mask --reset-position-ids "
                   "--split 90,10,0");
  }
};

TEST_P(SftParallel, EveryLayoutTrainsAsOneProcess) {
  ASSERT_EQ(0, train(0, "one", 6)) << "see " << dir_ << "/one.log";
  ASSERT_EQ(0, train(2, "dp2", 6)) << "see " << dir_ << "/dp2.log";
  ASSERT_EQ(0, train(2, "sp2", 6, "--tensor-model-parallel-size 2 --sequence-parallel")) << "see " << dir_ << "/sp2.log";
  ASSERT_EQ(0, train(2, "pp2", 6, "--pipeline-model-parallel-size 2")) << "see " << dir_ << "/pp2.log";
  ASSERT_EQ(0, train(2, "vpp2", 6, "--pipeline-model-parallel-size 2 --num-layers-per-virtual-pipeline-stage 1"))
      << "see " << dir_ << "/vpp2.log";
  expect_same_losses("one", "dp2", 1, 6);
  expect_same_losses("one", "sp2", 1, 6);
  expect_same_losses("one", "pp2", 1, 6);
  expect_same_losses("one", "vpp2", 1, 6);
}

INSTANTIATE_TEST_SUITE_P(Positions, SftParallel, ::testing::Values("rope", "alibi"));

}  // namespace
}  // namespace cs
