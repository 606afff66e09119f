// A checkpoint's meta.json and a Hugging Face config.json are checked before they are used: a
// field a run cannot have written (an iteration that is not its folder's, negative or huge sample
// counts, a loss scale of 0), a lost optimizer shard, a RoPE base of 0 or a value of the wrong JSON
// type is one line naming the file and the field, exit status 1 -- never a crash, an overflow or
// silent NaN steps.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "cli/run_util.h"

namespace cs {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

class CheckpointMeta : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/cs_meta_" + std::to_string(getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    ASSERT_EQ(0, test::run_binary("synth-data --output-prefix " + dir_ + "/data --vocab-size 101 --num-docs 20").status);
    flags_ = "train --model tiny --vocab-size 101 --make-vocab-size-divisible-by 1 --seq-length 8 --lr 1e-3 --lr-decay-iters 4 "
             "--log-interval 1 --eval-iters 0 --fp16 --data-path " + dir_ + "/data";
    ASSERT_EQ(0, test::run_binary(flags_ + " --train-iters 2 --save " + dir_ + "/run").status);
  }
  void TearDown() override { fs::remove_all(dir_); }
  // A copy of the run with meta.json edited; returns its folder.
  std::string edited(const std::string& name, const std::function<void(json&)>& edit) {
    const std::string d = dir_ + "/" + name;
    fs::copy(dir_ + "/run", d, fs::copy_options::recursive);
    const std::string meta = d + "/iter_0000002/meta.json";
    json j = json::parse(std::ifstream(meta));
    edit(j);
    std::ofstream(meta) << j.dump();
    return d;
  }
  void expect_refused(const std::string& ckpt, const std::string& needle, const std::string& extra = "") {
    const auto r = test::run_binary(flags_ + " --train-iters 4 --load " + ckpt + " --save " + ckpt + " " + extra);
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_EQ(test::count_matching_lines(r.err, "error:"), 1) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << "wanted: " << needle << "\n" << r.err;
  }
  std::string dir_, flags_;
};

TEST_F(CheckpointMeta, FieldsARunCannotHaveWrittenAreOneLine) {
  expect_refused(edited("iter", [](json& j) { j["iteration"] = 5; }),
                 "meta.json: iteration 5 but the folder is iteration 2");
  expect_refused(edited("neg", [](json& j) { j["consumed_samples"] = -80; }), "consumed samples -80");
  expect_refused(edited("huge", [](json& j) { j["consumed_samples"] = int64_t(1) << 62; }),
                 "expected fewer than 2^52");
  expect_refused(edited("steps", [](json& j) { j["scheduler"]["num_steps"] = 9; }), "scheduler num_steps 9");
  expect_refused(edited("style", [](json& j) { j["scheduler"]["lr_decay_style"] = "poly"; }),
                 "meta.json: scheduler {");
  expect_refused(edited("scale", [](json& j) { j["loss_scaler"]["scale"] = 0.0; }),
                 "loss_scaler {scale 0, growth_tracker");
}

TEST_F(CheckpointMeta, LostOptimizerShardIsAnErrorUnlessNoLoadOptim) {
  fs::remove(dir_ + "/run/iter_0000002/optim-tp00-pp000-dp000.safetensors");
  expect_refused(dir_ + "/run", "the optimizer state (optim-*.safetensors) is missing. Hint: --no-load-optim");
  const auto r = test::run_binary(flags_ + " --train-iters 4 --load " + dir_ + "/run --save " + dir_ +
                                  "/run --no-load-optim");
  EXPECT_EQ(r.status, 0) << r.err;
}

TEST_F(CheckpointMeta, HuggingFaceConfigValuesAreChecked) {
  ASSERT_EQ(0, test::run_binary("init --model tiny --save " + dir_ + "/hf").status);
  const std::string cfg = dir_ + "/hf/config.json";
  const json original = json::parse(std::ifstream(cfg));
  for (const auto& [key, value, needle] : std::vector<std::tuple<std::string, json, std::string>>{
           {"rope_theta", 0.0, "rope_theta (the RoPE base) must be a positive number, got 0"},
           {"rms_norm_eps", "x", "'rms_norm_eps' is \"x\", expected a number"},
           {"tie_word_embeddings", "no", "'tie_word_embeddings' is \"no\", expected true or false"}}) {
    json j = original;
    j[key] = value;
    std::ofstream(cfg) << j.dump();
    const auto r = test::run_binary("eval --load " + dir_ + "/hf --data-path " + dir_ + "/data --seq-length 8");
    EXPECT_EQ(r.status, 1) << key << "\n" << r.err;
    EXPECT_NE(r.err.find(cfg), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << "wanted: " << needle << "\n" << r.err;
  }
}

}  // namespace
}  // namespace cs
