// A Megatron-LM checkpoint (tests/fixtures/megatron: saved by Megatron-LM with tensor x pipeline
// 2 x 2) loads into any layout: trained from it with TP2 (sequence parallel), PP2 and TP2 x PP2,
// the losses, parameter norms and zero-gradient counts equal one process's within 1e-5, as every
// layout's do (DESIGN §4).
#include <gtest/gtest.h>

#include <string>

#include "parallel_runs.h"

namespace cs {
namespace {

class MegatronLoad : public test::ParallelRuns {};

TEST_P(MegatronLoad, ItsWeightsTrainAlikeInEveryLayout) {
  // The fixture's model: vocabulary 90 (+ the null tokenizer's end of document) padded to 96.
  ASSERT_EQ(0, test::run_binary("synth-data --output-prefix " + dir_ + "/data90 --vocab-size 90 --num-docs 60").status);
  flags_ = "train --vocab-size 90 --make-vocab-size-divisible-by 16 --seq-length 16 --micro-batch-size 2 "
           "--global-batch-size 8 --lr 3e-3 --log-interval 1 --eval-interval 5 --eval-iters 1 --log-params-norm "
           "--log-num-zeros-in-grad --data-path " + dir_ + "/data90 --load " + std::string(CS_SOURCE_DIR) +
           "/tests/fixtures/megatron/tp2pp2";
  ASSERT_EQ(0, train(0, "one", 3)) << "see " << dir_ << "/one.log";
  for (const auto& [ranks, name, flags] : std::vector<std::tuple<int, std::string, std::string>>{
           {2, "tp2", "--tensor-model-parallel-size 2 --sequence-parallel"},
           {2, "pp2", "--pipeline-model-parallel-size 2"},
           {4, "tp2pp2", "--tensor-model-parallel-size 2 --pipeline-model-parallel-size 2"}}) {
    ASSERT_EQ(0, train(ranks, name, 3, flags)) << "see " << dir_ << "/" << name << ".log";
    expect_same_losses("one", name, 1, 3);
  }
}

INSTANTIATE_TEST_SUITE_P(Megatron, MegatronLoad, ::testing::Values("rope"));

}  // namespace
}  // namespace cs
