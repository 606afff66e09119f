// Megatron's --skip-train and --ckpt-step through the binary. --skip-train evaluates the loaded
// model on --eval-iters global batches of the validation and test splits, each from its first
// sample, and writes nothing: on a checkpoint its losses equal the training run's own evaluations
// of the same samples with the same weights (the validation at that iteration, when it was the
// run's first; the test at the end of training), to the last printed digit. --ckpt-step loads an
// older checkpoint than the latest: evaluated, or resumed (its run then continues exactly as the
// original did). --pretrained-checkpoint: a launch script's fresh start fine-tunes from it, the same
// script's next launch resumes the run's own checkpoint. And the refusals.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "cli/run_util.h"

namespace cs {
namespace {
namespace fs = std::filesystem;

class SkipTrain : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/cs_skip_train_" + std::to_string(getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    // 200 documents: each split is one epoch for every size asked of it, so a split's first samples
    // are the same whether it was sized for one evaluation or for a run's (as in Megatron).
    ASSERT_EQ(0, test::run_binary("synth-data --output-prefix " + dir_ + "/data --vocab-size 101 --num-docs 200").status);
    flags_ = "train --model tiny --vocab-size 101 --seq-length 16 --micro-batch-size 2 --global-batch-size 4 "
             "--log-interval 1 --eval-interval 2 --eval-iters 2 --split 50,40,10 --data-path " + dir_ + "/data";
    run_ = test::run_binary(flags_ + " --lr 1e-3 --train-iters 4 --save-interval 2 --save " + dir_ + "/run");
    ASSERT_EQ(run_.status, 0) << run_.err;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_, flags_;
  test::RunResult run_;
};

// The lm loss value printed after " validation loss at AT |" in OUT ("" when there is none).
std::string loss_at(const std::string& out, const std::string& at) {
  const std::string key = " validation loss at " + at + " | lm loss value: ";
  const size_t p = out.find(key);
  return p == std::string::npos ? std::string() : out.substr(p + key.size(), out.find(' ', p + key.size()) - p - key.size());
}

std::vector<std::string> folder(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    names.push_back(e.path().string() + " " + std::to_string(e.is_regular_file() ? fs::file_size(e.path()) : 0) + " " +
                    std::to_string(fs::last_write_time(e.path()).time_since_epoch().count()));
  std::sort(names.begin(), names.end());
  return names;
}

TEST_F(SkipTrain, EvaluatesTheCheckpointAsTheRunDidAndWritesNothing) {
  const std::vector<std::string> before = folder(dir_ + "/run");
  // No --lr, no --train-iters: a launch script's evaluation needs neither; --save and
  // --tensorboard-dir are left alone.
  const auto r = test::run_binary(flags_ + " --load " + dir_ + "/run --skip-train --save " + dir_ + "/run " +
                                  "--tensorboard-dir " + dir_ + "/tb");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("--skip-train: evaluating " + dir_ + "/run at iteration 4"), std::string::npos) << r.err;
  const std::string test = loss_at(r.out, "iteration 4 on test set");
  ASSERT_FALSE(test.empty()) << r.out;
  EXPECT_EQ(test, loss_at(run_.out, "the end of training for test data"));
  ASSERT_FALSE(loss_at(r.out, "iteration 4 on validation set").empty()) << r.out;
  ASSERT_NE(run_.out.find("consumed samples:"), std::string::npos) << run_.out;  // a training log line
  EXPECT_EQ(r.out.find("consumed samples:"), std::string::npos) << "it trained:\n" << r.out;
  EXPECT_EQ(folder(dir_ + "/run"), before);
  EXPECT_FALSE(fs::exists(dir_ + "/tb"));
}

TEST_F(SkipTrain, CkptStepLoadsAnOlderCheckpoint) {
  const auto r = test::run_binary(flags_ + " --load " + dir_ + "/run --skip-train --ckpt-step 2");
  ASSERT_EQ(r.status, 0) << r.err;
  // The run's first validation, at iteration 2, took the validation split's first samples.
  const std::string valid = loss_at(r.out, "iteration 2 on validation set");
  ASSERT_FALSE(valid.empty()) << r.out;
  EXPECT_EQ(valid, loss_at(run_.out, "iteration 2"));
  EXPECT_NE(valid, loss_at(run_.out, "iteration 4"));
  // Resumed from iteration 2 into a new folder: iterations 3 and 4 as the run took them.
  const auto resumed = test::run_binary(flags_ + " --lr 1e-3 --train-iters 4 --load " + dir_ + "/run --ckpt-step 2 " +
                                        "--save " + dir_ + "/again");
  ASSERT_EQ(resumed.status, 0) << resumed.err;
  const std::regex line(" iteration +([34])/ +4 \\|[^\\n]*lm loss: ([0-9.E+-]+)");
  std::vector<std::string> want, got;
  for (std::sregex_iterator it(run_.out.begin(), run_.out.end(), line), end; it != end; ++it) want.push_back((*it)[2]);
  for (std::sregex_iterator it(resumed.out.begin(), resumed.out.end(), line), end; it != end; ++it)
    got.push_back((*it)[2]);
  ASSERT_EQ(want.size(), 2u) << run_.out;
  EXPECT_EQ(got, want) << resumed.out;
}

TEST_F(SkipTrain, PretrainedCheckpointStartsARunThatThenResumesItself) {
  const std::string script = flags_ + " --lr 1e-3 --load " + dir_ + "/new --pretrained-checkpoint " + dir_ + "/run " +
                             "--save " + dir_ + "/new --save-interval 2";
  const auto first = test::run_binary(script + " --train-iters 2");
  ASSERT_EQ(first.status, 0) << first.err;
  EXPECT_NE(first.err.find("no checkpoint in --load " + dir_ + "/new: fine-tuning from --pretrained-checkpoint " + dir_ +
                           "/run (its weights, from iteration 0)"), std::string::npos) << first.err;
  const auto finetuned = test::run_binary(flags_ + " --lr 1e-3 --train-iters 2 --load " + dir_ + "/run --finetune");
  ASSERT_EQ(finetuned.status, 0) << finetuned.err;
  const std::regex loss(" iteration +([12])/ +2 \\|[^\\n]*lm loss: ([0-9.E+-]+)");
  auto losses = [&](const std::string& out) {
    std::vector<std::string> v;
    for (std::sregex_iterator it(out.begin(), out.end(), loss), end; it != end; ++it) v.push_back((*it)[2]);
    return v;
  };
  EXPECT_EQ(losses(first.out).size(), 2u) << first.out;
  EXPECT_EQ(losses(first.out), losses(finetuned.out));
  // The same script, launched again for longer: the run's own checkpoint.
  const auto second = test::run_binary(script + " --train-iters 4 --override-opt-param-scheduler");
  ASSERT_EQ(second.status, 0) << second.err;
  EXPECT_EQ(second.err.find("fine-tuning from --pretrained-checkpoint"), std::string::npos) << second.err;
  EXPECT_NE(second.err.find("loaded " + dir_ + "/new/iter_0000002"), std::string::npos) << second.err;
  // Launched again before its first save (here: a run that left only its log files): it starts
  // over from the pretrained weights, the files moved aside.
  const std::string stopped = dir_ + "/stopped";
  fs::create_directories(stopped);
  std::ofstream(stopped + "/metrics.jsonl") << "{\"iteration\": 1}\n";
  const auto restarted = test::run_binary(flags_ + " --lr 1e-3 --train-iters 2 --load " + stopped +
                                          " --pretrained-checkpoint " + dir_ + "/run --save " + stopped);
  ASSERT_EQ(restarted.status, 0) << restarted.err;
  EXPECT_NE(restarted.err.find("a start from --pretrained-checkpoint: the previous run's files are now in " + stopped +
                               "/previous-"), std::string::npos) << restarted.err;
  EXPECT_EQ(losses(restarted.out), losses(finetuned.out));
  // A Hugging Face directory, without --load.
  const auto hf = test::run_binary(flags_ + " --lr 1e-3 --train-iters 1 --pretrained-checkpoint " + dir_ + "/run/hf");
  ASSERT_EQ(hf.status, 0) << hf.err;
  EXPECT_NE(hf.err.find("no --load: fine-tuning from --pretrained-checkpoint"), std::string::npos) << hf.err;
}

TEST_F(SkipTrain, Refusals) {
  auto expect = [&](const std::string& extra, int status, const std::string& text) {
    const auto r = test::run_binary(flags_ + " " + extra);
    EXPECT_EQ(r.status, status) << extra << "\n" << r.err;
    EXPECT_NE(r.err.find(text), std::string::npos) << extra << "\n" << r.err;
  };
  expect("--load " + dir_ + "/run --skip-train --ckpt-step 3", 1,
         "--ckpt-step 3: " + dir_ + "/run holds no complete iter_0000003. Hint: its checkpoints are at iterations 2, 4");
  expect("--lr 1e-3 --train-iters 2 --ckpt-step 2", 2, "--ckpt-step 2: --load (not given) is not a native checkpoint");
  expect("--load " + dir_ + "/run/hf --skip-train --ckpt-step 2", 2, "is not a native checkpoint");
  expect("--load " + dir_ + "/run --skip-train --eval-iters 0", 2, "--skip-train with --eval-iters 0: nothing to evaluate");
  expect("--load " + dir_ + "/run --skip-train --split 100,0,0", 1,
         "--skip-train: there is no validation or test split to evaluate");
  expect("--train-iters 2", 2, "--lr is required");
}

}  // namespace
}  // namespace cs
