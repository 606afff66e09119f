// Megatron's --no-save-optim / --no-save-rng through the binary: the checkpoint holds the weights
// (the same file as a full checkpoint's) and the run's position, without the optimizer shard, the
// schedule, the loss scale or the seed; a resume that would need them is one line naming
// --no-load-optim and --finetune (exit 1), as Megatron refuses it; with --no-load-optim it trains
// exactly as a full checkpoint does with --no-load-optim, and with --finetune from iteration 0;
// convert reads it as any checkpoint.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/run_util.h"

namespace cs {
namespace {
namespace fs = std::filesystem;

class NoSaveOptim : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/cs_no_save_optim_" + std::to_string(getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    ASSERT_EQ(0, test::run_binary("synth-data --output-prefix " + dir_ + "/data --vocab-size 101 --num-docs 20").status);
    flags_ = "train --model tiny --vocab-size 101 --seq-length 8 --micro-batch-size 2 --lr 1e-3 --lr-decay-iters 8 "
             "--lr-warmup-iters 1 --log-interval 1 --eval-iters 0 --fp16 --initial-loss-scale 1024 --data-path " +
             dir_ + "/data";
    auto r = test::run_binary(flags_ + " --train-iters 2 --save " + dir_ + "/full");
    ASSERT_EQ(r.status, 0) << r.err;
    r = test::run_binary(flags_ + " --train-iters 2 --no-save-optim --no-save-rng --save " + dir_ + "/lean");
    ASSERT_EQ(r.status, 0) << r.err;
  }
  void TearDown() override { fs::remove_all(dir_); }
  // Resumes a copy of checkpoint `from` to iteration 4 with `extra`.
  test::RunResult resume(const std::string& from, const std::string& name, const std::string& extra) {
    fs::copy(dir_ + "/" + from, dir_ + "/" + name, fs::copy_options::recursive);
    return test::run_binary(flags_ + " --train-iters 4 --load " + dir_ + "/" + name + " --save " + dir_ + "/" + name +
                            " " + extra);
  }
  std::string dir_, flags_;
};

std::string read(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

// The log lines from iteration 3 on, without the timing fields.
std::vector<std::string> steps(const std::string& out) {
  std::vector<std::string> lines;
  size_t at = 0;
  for (size_t end; (end = out.find('\n', at)) != std::string::npos; at = end + 1) {
    const std::string l = out.substr(at, end - at);
    if (l.rfind(" iteration", 0) == 0)
      lines.push_back(l.substr(0, l.find("| elapsed")) + l.substr(l.find("| learning rate"), l.find("| samples/s") -
                                                                                         l.find("| learning rate")));
  }
  return lines;
}

TEST_F(NoSaveOptim, TheCheckpointHoldsTheWeightsAndThePositionOnly) {
  const std::string lean = dir_ + "/lean/iter_0000002", full = dir_ + "/full/iter_0000002";
  EXPECT_TRUE(fs::exists(full + "/optim-tp00-pp000-dp000.safetensors"));
  EXPECT_FALSE(fs::exists(lean + "/optim-tp00-pp000-dp000.safetensors"));
  // The fp32 weights are the same file a full checkpoint writes; the moments were twice its size.
  const std::string weights = read(lean + "/model-tp00-pp000.safetensors");
  EXPECT_EQ(weights, read(full + "/model-tp00-pp000.safetensors"));
  EXPECT_GT(fs::file_size(full + "/optim-tp00-pp000-dp000.safetensors"), 2 * weights.size() - 4096);
  const auto meta = nlohmann::json::parse(read(lean + "/meta.json"));
  EXPECT_EQ(meta["iteration"], 2);
  EXPECT_EQ(meta["consumed_samples"], 4);
  EXPECT_EQ(meta["no_save_optim"], true);
  EXPECT_EQ(meta["no_save_rng"], true);
  for (const char* key : {"optimizer", "loss_scaler", "scheduler", "rng"}) EXPECT_FALSE(meta.contains(key)) << key;
}

TEST_F(NoSaveOptim, AResumeThatNeedsTheOptimizerIsRefusedInOneLine) {
  for (const char* extra : {"", "--resume"}) {
    const auto r = resume("lean", std::string("refused") + (*extra ? "_resume" : ""), extra);
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_EQ(test::count_matching_lines(r.err, "error:"), 1) << r.err;
    EXPECT_NE(r.err.find("saved with --no-save-optim, it holds no optimizer state"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("Hint: load it with --no-load-optim"), std::string::npos) << r.err;
    // --resume always loads the whole state: the line says to leave it out.
    EXPECT_EQ(r.err.find(", without --resume") != std::string::npos, *extra != 0) << r.err;
  }
}

TEST_F(NoSaveOptim, NoLoadOptimTrainsAsFromAFullCheckpointAndFinetuneStartsAtZero) {
  const auto a = resume("full", "full_fresh", "--no-load-optim --no-load-rng");
  const auto b = resume("lean", "lean_fresh", "--no-load-optim --no-load-rng");
  ASSERT_EQ(a.status, 0) << a.err;
  ASSERT_EQ(b.status, 0) << b.err;
  const std::vector<std::string> sa = steps(a.out), sb = steps(b.out);
  ASSERT_EQ(sa.size(), 2u) << a.out;
  EXPECT_EQ(sa, sb);
  EXPECT_NE(sb[0].find("iteration        3/       4 | consumed samples:            6 |"), std::string::npos) << sb[0];
  // A checkpoint of its own, with the optimizer again (this run did not pass --no-save-optim).
  EXPECT_TRUE(fs::exists(dir_ + "/lean_fresh/iter_0000004/optim-tp00-pp000-dp000.safetensors"));
  const auto f = resume("lean", "lean_ft", "--finetune");
  ASSERT_EQ(f.status, 0) << f.err;
  const std::vector<std::string> sf = steps(f.out);
  ASSERT_EQ(sf.size(), 4u) << f.out;
  EXPECT_NE(sf[0].find("iteration        1/       4 | consumed samples:            2 |"), std::string::npos) << sf[0];
  const auto c = test::run_binary("convert --input " + dir_ + "/lean --output " + dir_ + "/hf --to hf");
  EXPECT_EQ(c.status, 0) << c.err;
}

}  // namespace
}  // namespace cs
