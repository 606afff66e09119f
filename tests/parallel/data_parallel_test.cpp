// Data parallelism through the real binary under mpirun: 2 and 4 ranks train the same steps as one
// process (the same global batch, split over the ranks as Megatron's sampler splits it): the loss
// at every iteration and the validation loss within 1e-5 relative (DESIGN §4), the final weights
// within fp32 summation-order differences; a checkpoint written by 2 ranks resumes in one process
// with the losses of the uninterrupted 2-rank run; a global batch the ranks cannot share is one
// line naming the flag.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "checkpoint/safetensors.h"
#include "cli/run_util.h"
#include "closeness.h"
#include "parallel_runs.h"

namespace cs {
namespace {
namespace fs = std::filesystem;

// The tiny preset as it is (3 heads, vocabulary 101): the weight tolerances below were measured on it.
class DataParallel : public test::ParallelRuns {
 protected:
  std::string model_flags() const override { return "--vocab-size 101 --make-vocab-size-divisible-by 1"; }
};

TEST_P(DataParallel, TwoAndFourRanksTrainAsOneProcess) {
  ASSERT_EQ(0, train(0, "one", 10));
  ASSERT_EQ(0, train(2, "dp2", 10)) << "see " << dir_ << "/dp2.log";
  ASSERT_EQ(0, train(4, "dp4", 10)) << "see " << dir_ << "/dp4.log";
  expect_same_losses("one", "dp2", 1, 10);
  expect_same_losses("one", "dp4", 1, 10);
  const SafetensorsFile want = SafetensorsFile::open(dir_ + "/one/iter_0000010/model-tp00-pp000.safetensors");
  for (const std::string run : {"dp2", "dp4"}) {
    const SafetensorsFile got = SafetensorsFile::open(dir_ + "/" + run + "/iter_0000010/model-tp00-pp000.safetensors");
    for (const std::string& name : want.names()) {
      std::vector<float> a(size_t(want.tensor(name).numel())), b(a.size());
      want.read_f32(name, a.data(), int64_t(a.size()));
      got.read_f32(name, b.data(), int64_t(b.size()));
      // Only the fp32 order of the gradient sums differs (micro-batches per rank, then ranks): after
      // 10 AdamW steps the weights were measured within 1.6e-8 absolute (1.2e-7 on norm weights ~1).
      EXPECT_TRUE(test::all_close(b.data(), a.data(), int64_t(a.size()), 1e-7, 1e-5, run + " " + name));
    }
  }
  // One log, one set of files: only rank 0 prints and writes.
  std::ifstream log(dir_ + "/dp2.log");
  const std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_EQ(test::count_matching_lines(text, " iteration       10/      10 |"), 1) << text;
}

TEST_P(DataParallel, CheckpointOfTwoRanksResumesInOneProcess) {
  ASSERT_EQ(0, train(2, "dp2", 10));
  ASSERT_EQ(0, train(2, "half", 10, "--exit-interval 5"));  // the same schedule and samples, stopped at 5
  ASSERT_EQ(0, train(0, "half", 10, "--load " + dir_ + "/half"));
  expect_same_losses("dp2", "half", 6, 10);
}

// The distributed optimizer (Megatron's flag, and AscendSpeed's DeepSpeed ZeRO-2 launch with its
// ds_config.json): the same steps as one process, and its checkpoint (the whole optimizer state,
// gathered) resumes with 4 ranks, and with one process.
TEST_P(DataParallel, DistributedOptimizerAndZero2TrainAsOneProcessAndResumeInOtherLayouts) {
  ASSERT_EQ(0, train(0, "one", 10));
  ASSERT_EQ(0, train(2, "dist", 10, "--use-distributed-optimizer")) << "see " << dir_ << "/dist.log";
  expect_same_losses("one", "dist", 1, 10);
  // AscendSpeed's ds_config.json for Baichuan-7B (its batch sizes scaled to this run): stage 2;
  // its optimizer's betas, eps and weight decay are the ones that run.
  std::ofstream(dir_ + "/ds_config.json") << R"({"train_batch_size": 8, "train_micro_batch_size_per_gpu": 2,
    "gradient_accumulation_steps": 2, "steps_per_print": 1, "zero_allow_untested_optimizer": true,
    "optimizer": {"type": "AdamW", "params": {"lr": 2e-5, "eps": 1e-8, "betas": [0.9, 0.95], "weight_decay": 0.0}},
    "zero_optimization": {"stage": 2, "contiguous_gradients": false, "allgather_bucket_size": 1e8,
      "reduce_bucket_size": 1e8, "overlap_comm": true, "reduce_scatter": true}})";
  const std::string ds = "--deepspeed --deepspeed_config " + dir_ + "/ds_config.json";
  ASSERT_EQ(0, train(0, "one_ds", 10, "--adam-beta2 0.95 --weight-decay 0"));
  ASSERT_EQ(0, train(2, "zero2", 10, ds)) << "see " << dir_ << "/zero2.log";
  expect_same_losses("one_ds", "zero2", 1, 10);
  std::ifstream log(dir_ + "/zero2.log");
  const std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_EQ(test::count_matching_lines(text, "keys with no effect here: steps_per_print, zero_allow_untested_optimizer"), 1)
      << text;
  // Stopped at 5 by 2 ranks, resumed by 4 ranks and by one process.
  ASSERT_EQ(0, train(2, "z5", 10, ds + " --exit-interval 5"));
  fs::copy(dir_ + "/z5", dir_ + "/z5_one", fs::copy_options::recursive);
  ASSERT_EQ(0, train(4, "z5", 10, ds + " --load " + dir_ + "/z5")) << "see " << dir_ << "/z5.log";
  expect_same_losses("zero2", "z5", 6, 10);
  ASSERT_EQ(0, train(0, "z5_one", 10, "--adam-beta2 0.95 --weight-decay 0 --load " + dir_ + "/z5_one"));
  expect_same_losses("zero2", "z5_one", 6, 10);
}

TEST(DeepSpeedConfig, StageThreeAndOffloadAreOneLineErrors) {
  const std::string dir = ::testing::TempDir() + "/cs_ds_" + std::to_string(getpid());
  fs::create_directories(dir);
  ASSERT_EQ(0, test::run_binary("synth-data --output-prefix " + dir + "/data --vocab-size 101 --num-docs 20").status);
  const std::string train = "train --model tiny --vocab-size 101 --seq-length 8 --train-iters 1 --lr 1e-3 --data-path " +
                            dir + "/data --deepspeed --deepspeed_config " + dir + "/ds.json";
  for (const auto& [cfg, needle] : std::vector<std::pair<std::string, std::string>>{
           {R"({"zero_optimization": {"stage": 3}})", "zero_optimization.stage 3"},
           {R"({"zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpu"}}})", "offloading is not supported"},
           {R"({"train_batch_size": 16})", "train_batch_size 16 disagrees with --global-batch-size 1"},
           {R"({"optimizer": {"params": {"betas": "x"}}})", "optimizer.params.betas: expected two numbers"},
           {R"({"optimizer": 5})", "optimizer is number; expected an object"},
           {R"({"zero_optimization": [2]})", "zero_optimization is array; expected an object"}}) {
    std::ofstream(dir + "/ds.json") << cfg;
    const auto r = test::run_binary(train);
    EXPECT_NE(r.status, 0) << cfg;
    EXPECT_EQ(test::count_matching_lines(r.err, "error:"), 1) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << cfg << "\n" << r.err;
  }
  const auto r = test::run_binary(train.substr(0, train.find(" --deepspeed")) + " --zero-stage 3");
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("--zero-stage 3"), std::string::npos) << r.err;
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Positions, DataParallel, ::testing::Values("rope", "alibi"),
                         [](const auto& info) { return info.param; });

TEST(DataParallelFlags, GlobalBatchTheRanksCannotShareIsOneLine) {
  if (test::run_shell("mpirun --version > /dev/null 2>&1") != 0) GTEST_SKIP() << "mpirun not installed";
  const std::string dir = ::testing::TempDir() + "/cs_dp_flags_" + std::to_string(getpid());
  fs::create_directories(dir);
  ASSERT_EQ(0, test::run_binary("synth-data --output-prefix " + dir + "/data --vocab-size 101 --num-docs 20").status);
  const std::string log = dir + "/err.log";
  const int rc = test::run_shell(test::kMpirun + "3 " + CS_BINARY +
                           " train --model tiny --vocab-size 101 --seq-length 8 --micro-batch-size 2 "
                           "--global-batch-size 8 --train-iters 1 --lr 1e-3 --data-path " + dir + "/data > " + log +
                           " 2>&1");
  EXPECT_NE(rc, 0);
  std::ifstream f(log);
  const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("--global-batch-size 8 is not a multiple of --micro-batch-size 2 x data-parallel size 3"),
            std::string::npos) << text;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace cs
