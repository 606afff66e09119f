// Bad input to chuanspeed convert (and to loading): a config whose sizes disagree with the
// weights (Hugging Face config.json and native meta.json), a checkpoint of another model size, a
// truncated shard (safetensors and torch .bin), a header offset past the end of the file, a
// missing native shard. Each is exactly one clear error line naming the file or tensor, a
// non-zero exit, and no output that looks complete.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "cli/run_util.h"
#include "parallel/group.h"
#include "train/checkpointing.h"
#include "device_env.h"

namespace cs {
namespace {
namespace fs = std::filesystem;
using test::run_binary;
const std::string kFix = std::string(CS_SOURCE_DIR) + "/tests/fixtures/";

class ConvertErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/cs_convert_errors_" + std::to_string(getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  // A writable copy of a fixture directory.
  std::string copy(const std::string& fixture) {
    const std::string d = dir_ + "/in";
    fs::copy(kFix + fixture, d, fs::copy_options::recursive);
    return d;
  }
  static void edit_json(const std::string& path, const std::function<void(nlohmann::json&)>& f) {
    nlohmann::json j = nlohmann::json::parse(std::ifstream(path));
    f(j);
    std::ofstream(path) << j.dump(2);
  }
  // Converts IN (extra flags appended) expecting one error line that contains every needle, and no
  // loadable output.
  void expect_error(const std::string& in, const std::string& flags, int status, const std::vector<std::string>& needles) {
    const std::string out = dir_ + "/out";
    auto r = run_binary("convert --input " + in + " --output " + out + " " + flags);
    EXPECT_EQ(r.status, status) << r.err;
    EXPECT_EQ(test::count_matching_lines(r.err, "error:"), 1) << r.err;
    std::string last = r.err.substr(0, r.err.find_last_not_of('\n') + 1);
    last = last.substr(last.find_last_of('\n') + 1);
    EXPECT_NE(last.find("error:"), std::string::npos) << r.err;
    for (const std::string& n : needles) EXPECT_NE(last.find(n), std::string::npos) << "wanted: " << n << "\n" << r.err;
    EXPECT_FALSE(fs::exists(out + "/config.json"));
    EXPECT_FALSE(fs::exists(out + "/latest_checkpointed_iteration.txt"));
  }
  std::string dir_;
};

TEST_F(ConvertErrors, HfConfigWhoseSizesDisagreeWithTheWeights) {
  const std::string in = copy("model/rope");
  edit_json(in + "/config.json", [](nlohmann::json& j) { j["intermediate_size"] = 96; });
  expect_error(in, "", 1, {"model.layers.0.mlp.gate_proj.weight", "[80, 48]", "[96, 48]", "config.json"});
  edit_json(in + "/config.json", [](nlohmann::json& j) { j["intermediate_size"] = 80; j["num_hidden_layers"] = 3; });
  expect_error(in, "", 1, {"missing tensor", "model.layers.2."});
  edit_json(in + "/config.json", [](nlohmann::json& j) { j["num_hidden_layers"] = 1; });
  expect_error(in, "", 1, {"unexpected tensor", "model.layers.1."});
}

TEST_F(ConvertErrors, NativeMetaWhoseSizesDisagreeWithTheShards) {
  const std::string native = dir_ + "/native";
  ASSERT_EQ(0, run_binary("convert --input " + kFix + "model/rope --output " + native).status);
  edit_json(native + "/iter_0000000/meta.json", [](nlohmann::json& j) { j["config"]["vocab_size"] = 120; });
  expect_error(native, "", 1, {"model.embed_tokens.weight", "[101, 48]", "meta.json"});
}

TEST_F(ConvertErrors, CheckpointOfAnotherModelSize) {
  // The seed converter's --type names an architecture the input is not.
  expect_error(kFix + "model/rope", "--type 13B", 2, {"--type 13B: the input is 2 layers", "not Baichuan-13B"});
  // A native checkpoint of the tiny model loaded into the demo model (resume / --load).
  const std::string native = dir_ + "/native";
  ASSERT_EQ(0, run_binary("convert --input " + kFix + "model/rope --output " + native).status);
  SingleGroup tp("tp");
  Model demo(model_preset("demo"), test::cpu_ctx(), tp, 1, 8);
  try {
    load_training_checkpoint(native, demo, nullptr, nullptr);
    ADD_FAILURE() << "a tiny checkpoint loaded into the demo model";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.embed_tokens.weight"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("another model size"), std::string::npos) << e.what();
  }
}

TEST_F(ConvertErrors, NativeOutputOntoAnExistingCheckpoint) {
  // A training run's checkpoint folder as --output: its latest file would have been pointed at
  // the converted iteration-0 weights. Refused, and the folder is untouched.
  const std::string run = dir_ + "/run";
  ASSERT_EQ(0, run_binary("convert --input " + kFix + "model/rope --output " + run).status);
  const std::string latest = run + "/latest_checkpointed_iteration.txt";
  const auto before = fs::last_write_time(latest);
  auto r = run_binary("convert --input " + kFix + "model/rope --output " + run);
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("already holds a native checkpoint"), std::string::npos) << r.err;
  EXPECT_EQ(test::count_matching_lines(r.err, "error:"), 1) << r.err;
  EXPECT_EQ(fs::last_write_time(latest), before);
}

TEST_F(ConvertErrors, DtypeForANativeOutput) {
  // Native output is fp32: a --dtype asking otherwise was silently ignored.
  expect_error(kFix + "model/rope", "--dtype bf16", 2, {"--dtype BF16", "always fp32", "--to hf"});
  const std::string native = dir_ + "/native";
  ASSERT_EQ(0, run_binary("convert --input " + kFix + "model/rope --output " + native).status);
  expect_error(native, "--to native --tensor-model-parallel-size 1 --dtype fp16", 2, {"--dtype F16"});
}

TEST_F(ConvertErrors, TruncatedShards) {
  std::string in = copy("eval/rope-f32-sharded");
  const std::string shard = in + "/model-00002-of-00002.safetensors";
  fs::resize_file(shard, fs::file_size(shard) - 100);
  expect_error(in, "", 1, {shard, "beyond the end of the file"});
  fs::remove_all(in);
  in = copy("torch_bin/rope-bin-sharded");
  const std::string bin = in + "/pytorch_model-00001-of-00002.bin";
  fs::resize_file(bin, fs::file_size(bin) / 2);
  expect_error(in, "", 1, {bin});
}

TEST_F(ConvertErrors, HeaderOffsetPastTheEnd) {
  const std::string in = copy("model/rope"), st = in + "/model.safetensors";
  std::string bytes;
  {
    std::ifstream f(st, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(f), {});
  }
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(uint8_t(bytes[size_t(i)])) << (8 * i);
  nlohmann::ordered_json h = nlohmann::ordered_json::parse(bytes.substr(8, n));
  auto& off = h["lm_head.weight"]["data_offsets"];  // moved 1 MB on: same size, past the end
  off = {off[0].get<uint64_t>() + (1 << 20), off[1].get<uint64_t>() + (1 << 20)};
  std::string json = h.dump();
  json.append((8 - json.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char(uint64_t(json.size()) >> (8 * i));
  std::ofstream(st, std::ios::binary) << out << json << bytes.substr(8 + n);
  expect_error(in, "", 1, {st, "'lm_head.weight'", "beyond the end of the file"});
}

TEST_F(ConvertErrors, MissingNativeShard) {
  ASSERT_EQ(0, run_binary("init --model tiny --num-attention-heads 4 --vocab-size 128 "
                          "--make-vocab-size-divisible-by 1 --save " + dir_ + "/hf").status);
  const std::string native = dir_ + "/native";
  ASSERT_EQ(0, run_binary("convert --input " + dir_ + "/hf --output " + native + " --tensor-model-parallel-size 2").status);
  fs::remove(native + "/iter_0000000/model-tp01-pp000.safetensors");
  expect_error(native, "", 1, {"model.embed_tokens.weight", "a shard is missing"});
}

// Converting into a directory that holds an earlier conversion: the earlier weights must not
// shadow the new ones (a loader takes model.safetensors over an index), and a conversion failing
// half-way must not leave the earlier config.json beside a mix of old and new shards.
TEST_F(ConvertErrors, EarlierConversionInTheOutputDirectory) {
  const std::string out = dir_ + "/out", direct = dir_ + "/direct", via = dir_ + "/via";
  const std::string in = kFix + "model/rope";
  ASSERT_EQ(0, run_binary("convert --input " + in + " --output " + out + " --to hf --dtype bf16").status);
  auto r = run_binary("convert --input " + in + " --output " + out + " --to hf --max-shard-size 20KB");
  ASSERT_EQ(0, r.status) << r.err;
  EXPECT_FALSE(fs::exists(out + "/model.safetensors"));
  ASSERT_EQ(0, run_binary("convert --input " + in + " --output " + direct).status);
  ASSERT_EQ(0, run_binary("convert --input " + out + " --output " + via).status);
  auto bytes = [](const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  };
  const std::string shard = "/iter_0000000/model-tp00-pp000.safetensors";
  EXPECT_TRUE(bytes(direct + shard) == bytes(via + shard)) << "the fp32 output read back as the earlier bf16 one";
  // A failure after some shards are written (the third cannot be created).
  fs::create_directories(out + "/model-00003-of-00012.safetensors.tmp");
  r = run_binary("convert --input " + in + " --output " + out + " --to hf --max-shard-size 20KB");
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_FALSE(fs::exists(out + "/config.json")) << "a half-written output looks loadable";
  // The two shards completed before the failure are gone too: nothing of the failed run is left.
  EXPECT_FALSE(fs::exists(out + "/model-00001-of-00012.safetensors"));
  EXPECT_FALSE(fs::exists(out + "/model-00002-of-00012.safetensors"));
  EXPECT_FALSE(fs::exists(out + "/model.safetensors.index.json"));
  fs::remove(out + "/model-00003-of-00012.safetensors.tmp");
  // Onto itself: refused, the input intact.
  ASSERT_EQ(0, run_binary("convert --input " + direct + " --output " + out + " --to hf").status);
  r = run_binary("convert --input " + out + " --output " + out + "/ --to hf --dtype bf16");
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_EQ(test::count_matching_lines(r.err, "is the input directory"), 1) << r.err;
  EXPECT_TRUE(fs::exists(out + "/config.json") && fs::exists(out + "/model.safetensors"));
}

}  // namespace
}  // namespace cs
