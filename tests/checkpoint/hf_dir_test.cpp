// HfWeights over single-file and sharded Hugging Face directories, and load_named's strictness:
// every wanted tensor present with its exact shape, every file tensor wanted (bar inv_freq
// buffers), over safetensors and PyTorch .bin directories. Bad directories must fail with a
// message naming the directory, file or tensor.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "checkpoint/hf_dir.h"
#include "core/half.h"

namespace cs {
namespace {

namespace fs = std::filesystem;
using testing::HasSubstr;

std::string fresh_dir(const std::string& name) {
  fs::path d = fs::path(testing::TempDir()) / ("cs_hf_dir_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

void write_text(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// A tiny model's tensors: embed [5,4] F32, norm [4] BF16, layer-0 inv_freq [2] F32.
struct TinyModel {
  std::vector<float> embed = std::vector<float>(20);
  std::vector<uint16_t> norm;
  std::vector<float> inv_freq = {1.f, 0.01f};
  TinyModel() {
    for (int i = 0; i < 20; ++i) embed[size_t(i)] = 0.5f * float(i) - 3.f;
    for (float x : {1.f, 0.5f, -2.f, 0.25f}) norm.push_back(f32_to_bf16(x));
  }
  NamedTensor embed_t() { return {"model.embed_tokens.weight", Tensor(embed.data(), {5, 4})}; }
  NamedTensor norm_t() { return {"model.norm.weight", Tensor(norm.data(), {4}, DType::BF16)}; }
  NamedTensor inv_t() {
    return {"model.layers.0.self_attn.rotary_emb.inv_freq", Tensor(inv_freq.data(), {2})};
  }
};

std::string single_file_dir(const std::string& name, TinyModel& m) {
  std::string dir = fresh_dir(name);
  write_text(dir + "/config.json", R"({"hidden_size": 4, "vocab_size": 5})");
  write_safetensors(dir + "/model.safetensors", {m.embed_t(), m.inv_t(), m.norm_t()});
  return dir;
}

std::string sharded_dir(const std::string& name, TinyModel& m) {
  std::string dir = fresh_dir(name);
  write_text(dir + "/config.json", R"({"hidden_size": 4})");
  write_safetensors(dir + "/model-00001-of-00002.safetensors", {m.norm_t(), m.inv_t()});
  write_safetensors(dir + "/model-00002-of-00002.safetensors", {m.embed_t()});
  write_text(dir + "/model.safetensors.index.json", R"({
    "metadata": {"total_size": 96},
    "weight_map": {
      "model.norm.weight": "model-00001-of-00002.safetensors",
      "model.embed_tokens.weight": "model-00002-of-00002.safetensors",
      "model.layers.0.self_attn.rotary_emb.inv_freq": "model-00001-of-00002.safetensors"}})");
  return dir;
}

TEST(HfWeights, SingleFile) {
  TinyModel m;
  std::string dir = single_file_dir("single", m);
  HfWeights w(dir);
  EXPECT_EQ(w.config()["hidden_size"], 4);
  EXPECT_EQ(w.names(), (std::vector<std::string>{"model.embed_tokens.weight",
                                                 "model.layers.0.self_attn.rotary_emb.inv_freq",
                                                 "model.norm.weight"}));
  EXPECT_TRUE(w.has("model.norm.weight"));
  EXPECT_FALSE(w.has("lm_head.weight"));
  EXPECT_EQ(w.shape("model.embed_tokens.weight"), Shape({5, 4}));
  EXPECT_EQ(w.dtype("model.norm.weight"), DType::BF16);
  std::vector<float> norm(4);
  w.read_f32("model.norm.weight", norm.data(), 4);
  EXPECT_EQ(norm, (std::vector<float>{1.f, 0.5f, -2.f, 0.25f}));
  std::vector<float> rows(8);
  w.read_f32_rows("model.embed_tokens.weight", 3, 5, rows.data());
  EXPECT_EQ(rows[0], m.embed[12]);
  EXPECT_EQ(rows[7], m.embed[19]);
  std::string msg = error_of([&] { w.shape("lm_head.weight"); });
  EXPECT_THAT(msg, HasSubstr("[load] " + dir));
  EXPECT_THAT(msg, HasSubstr("'lm_head.weight'"));
}

TEST(HfWeights, ShardedIndexOpensEachShardOnce) {
  TinyModel m;
  std::string dir = sharded_dir("sharded", m);
  HfWeights w = HfWeights::open(dir);
  EXPECT_EQ(w.names().size(), 3u);
  EXPECT_EQ(w.names()[0], "model.norm.weight");  // weight_map order
  EXPECT_EQ(&w.file_of("model.norm.weight"), &w.file_of("model.layers.0.self_attn.rotary_emb.inv_freq"));
  EXPECT_NE(&w.file_of("model.norm.weight"), &w.file_of("model.embed_tokens.weight"));
  EXPECT_THAT(w.file_of("model.embed_tokens.weight").path(), HasSubstr("model-00002-of-00002"));
  std::vector<float> embed(20);
  w.read_f32("model.embed_tokens.weight", embed.data(), 20);
  EXPECT_EQ(embed, m.embed);
}

TEST(HfWeights, LoadNamedFillsWantedAndSkipsInvFreq) {
  TinyModel m;
  for (bool sharded : {false, true}) {
    std::string dir = sharded ? sharded_dir("load_sharded", m) : single_file_dir("load", m);
    HfWeights w(dir);
    std::vector<float> embed(20, 0.f), norm(4, 0.f);
    load_named(w, {{"model.norm.weight", {4}, norm.data()},
                   {"model.embed_tokens.weight", {5, 4}, embed.data()}});
    EXPECT_EQ(embed, m.embed);
    EXPECT_EQ(norm, (std::vector<float>{1.f, 0.5f, -2.f, 0.25f}));
  }
}

TEST(HfWeights, LoadNamedRejectsMismatchesBeforeWritingAnything) {
  TinyModel m;
  std::string dir = single_file_dir("load_bad", m);
  HfWeights w(dir);
  std::vector<float> embed(20, -7.f), norm(4, -7.f), head(20, -7.f);
  // Wrong shape: [4, 5] wanted, file has [5, 4].
  std::string msg = error_of([&] {
    load_named(w, {{"model.norm.weight", {4}, norm.data()},
                   {"model.embed_tokens.weight", {4, 5}, embed.data()}});
  });
  EXPECT_THAT(msg, HasSubstr("[load] " + dir));
  EXPECT_THAT(msg, HasSubstr("'model.embed_tokens.weight'"));
  EXPECT_THAT(msg, HasSubstr("got [5, 4], expected [4, 5]"));
  // Missing: lm_head is wanted but absent.
  msg = error_of([&] {
    load_named(w, {{"model.norm.weight", {4}, norm.data()},
                   {"model.embed_tokens.weight", {5, 4}, embed.data()},
                   {"lm_head.weight", {5, 4}, head.data()}});
  });
  EXPECT_THAT(msg, HasSubstr("missing tensor 'lm_head.weight'"));
  // Unexpected: the file's norm is not wanted.
  msg = error_of([&] { load_named(w, {{"model.embed_tokens.weight", {5, 4}, embed.data()}}); });
  EXPECT_THAT(msg, HasSubstr("unexpected tensor 'model.norm.weight'"));
  EXPECT_THAT(msg, HasSubstr("[load] " + dir));
  // Nothing was copied by any failing call.
  for (float x : embed) EXPECT_EQ(x, -7.f);
  for (float x : norm) EXPECT_EQ(x, -7.f);
}

TEST(HfWeights, LoadNamedRejectsIntegerTensors) {
  std::string dir = fresh_dir("load_int");
  write_text(dir + "/config.json", "{}");
  std::vector<int64_t> ids = {1, 2};
  write_safetensors(dir + "/model.safetensors", {{"model.ids", Tensor(ids.data(), {2}, DType::I64)}});
  std::vector<float> out(2);
  std::string msg = error_of([&] { load_named(HfWeights(dir), {{"model.ids", {2}, out.data()}}); });
  EXPECT_THAT(msg, HasSubstr("'model.ids'"));
  EXPECT_THAT(msg, HasSubstr("I64"));
}

TEST(HfWeights, BadDirectoriesNameWhatIsWrong) {
  TinyModel m;
  std::string base = fresh_dir("bad");
  auto check = [](const std::string& dir, std::vector<std::string> expect) {
    SCOPED_TRACE(dir);
    std::string msg = error_of([&] { HfWeights w(dir); });
    EXPECT_THAT(msg, HasSubstr("[load] "));
    EXPECT_THAT(msg, HasSubstr("Hint:"));
    for (const auto& s : expect) EXPECT_THAT(msg, HasSubstr(s));
  };
  check(base + "/nope", {base + "/nope: directory not found"});
  write_text(base + "/file", "x");
  check(base + "/file", {"not a directory"});

  std::string empty = base + "/empty";
  fs::create_directories(empty);
  check(empty, {empty + ": no config.json"});
  write_text(empty + "/config.json", "{");
  check(empty, {empty + "/config.json: invalid JSON"});
  write_text(empty + "/config.json", "[1]");
  check(empty, {"config.json: got a JSON array, expected an object"});
  write_text(empty + "/config.json", "{}");
  check(empty, {empty + ": no model.safetensors, pytorch_model.bin or their index.json"});

  write_text(empty + "/pytorch_model-00001-of-00002.bin", "x");
  check(empty, {"found pytorch_model-00001-of-00002.bin", "pytorch_model.bin.index.json"});
  fs::remove(empty + "/pytorch_model-00001-of-00002.bin");
  write_safetensors(empty + "/model-00001-of-00002.safetensors", {m.norm_t()});
  check(empty, {"found model-00001-of-00002.safetensors", "index.json"});
}

TEST(HfWeights, PyTorchBinDirectoriesLoad) {
  const std::string fixtures = std::string(CS_SOURCE_DIR) + "/tests/fixtures/torch_bin/";
  std::string dir = fresh_dir("bin");
  write_text(dir + "/config.json", "{}");
  fs::copy(fixtures + "tiny.bin", dir + "/pytorch_model.bin");
  HfWeights w(dir);
  EXPECT_EQ(w.names().front(), "f32");
  EXPECT_THAT(w.file_of("f32").path(), HasSubstr("pytorch_model.bin"));
  std::vector<float> p(2);
  w.read_f32("param", p.data(), 2);
  EXPECT_EQ(p, (std::vector<float>{2.f, -3.f}));
}

TEST(HfWeights, PrefersSafetensorsOverBinAndRejectsBadBins) {
  TinyModel m;
  const std::string fixtures = std::string(CS_SOURCE_DIR) + "/tests/fixtures/torch_bin/";
  std::string dir = single_file_dir("both_kinds", m);
  fs::copy(fixtures + "malicious.bin", dir + "/pytorch_model.bin");
  EXPECT_EQ(HfWeights(dir).names().size(), 3u);  // model.safetensors wins; the .bin is not opened
  fs::remove(dir + "/model.safetensors");
  std::string msg = error_of([&] { HfWeights w(dir); });
  EXPECT_THAT(msg, HasSubstr("[torch_pickle] " + dir + "/pytorch_model.bin"));
  EXPECT_THAT(msg, HasSubstr("global 'os system' is not allowed"));
  write_text(dir + "/pytorch_model.bin", "not a zip at all, but long enough to look");
  EXPECT_THAT(error_of([&] { HfWeights w(dir); }), HasSubstr("[zip] " + dir + "/pytorch_model.bin"));

  dir = fresh_dir("bin_index");
  write_text(dir + "/config.json", "{}");
  write_text(dir + "/pytorch_model.bin.index.json", R"({"weight_map": {"a": "../pytorch_model.bin"}})");
  msg = error_of([&] { HfWeights w(dir); });
  EXPECT_THAT(msg, HasSubstr("pytorch_model.bin.index.json"));
  EXPECT_THAT(msg, HasSubstr("expected a file name in the same directory"));
  fs::copy(fixtures + "tiny.bin", dir + "/pytorch_model-00001-of-00001.bin");
  write_text(dir + "/pytorch_model.bin.index.json",
             R"({"weight_map": {"f32": "pytorch_model-00001-of-00001.bin"}})");
  msg = error_of([&] { HfWeights w(dir); });
  EXPECT_THAT(msg, HasSubstr("holds tensor 'f16', which weight_map does not list"));
}

TEST(HfWeights, InconsistentIndexIsAnError) {
  TinyModel m;
  auto check = [](const std::string& dir, std::vector<std::string> expect) {
    std::string msg = error_of([&] { HfWeights w(dir); });
    EXPECT_THAT(msg, HasSubstr("[load] " + dir + "/model.safetensors.index.json"));
    for (const auto& s : expect) EXPECT_THAT(msg, HasSubstr(s));
  };
  std::string dir = sharded_dir("index_missing_shard", m);
  fs::remove(dir + "/model-00002-of-00002.safetensors");
  check(dir, {"shard model-00002-of-00002.safetensors", "'model.embed_tokens.weight'", "not found"});

  dir = sharded_dir("index_unlisted", m);
  write_text(dir + "/model.safetensors.index.json", R"({"weight_map": {
      "model.norm.weight": "model-00001-of-00002.safetensors",
      "model.embed_tokens.weight": "model-00002-of-00002.safetensors"}})");
  check(dir, {"holds tensor 'model.layers.0.self_attn.rotary_emb.inv_freq'", "does not list"});

  dir = sharded_dir("index_wrong_shard", m);
  write_text(dir + "/model.safetensors.index.json", R"({"weight_map": {
      "model.norm.weight": "model-00002-of-00002.safetensors"}})");
  check(dir, {"'model.norm.weight' is mapped to model-00002-of-00002.safetensors"});

  dir = sharded_dir("index_no_map", m);
  write_text(dir + "/model.safetensors.index.json", R"({"metadata": {}})");
  check(dir, {"no \"weight_map\""});

  dir = sharded_dir("index_corrupt_shard", m);
  write_text(dir + "/model-00002-of-00002.safetensors", "garbage!");
  std::string msg = error_of([&] { HfWeights w(dir); });
  EXPECT_THAT(msg, HasSubstr("[safetensors] " + dir + "/model-00002-of-00002.safetensors"));
}

TEST(HfWeights, PrefersSingleFileOverIndex) {
  TinyModel m;
  std::string dir = sharded_dir("both", m);
  write_safetensors(dir + "/model.safetensors", {m.embed_t()});
  HfWeights w(dir);
  EXPECT_EQ(w.names(), std::vector<std::string>{"model.embed_tokens.weight"});
}

}  // namespace
}  // namespace cs
