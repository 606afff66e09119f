// chuanspeed convert with --tensor-model-parallel-size / --pipeline-model-parallel-size: the
// native shards of a TP x PP layout (Megatron's splits) read back through the layout-free reader
// as TP 1 bit for bit, back to Hugging Face byte for byte, and each rank's file holds exactly its
// slice (W_pack: its heads' q, k and v rows; o_proj/down: its columns; embedding/head: its
// vocabulary rows; norms once, on TP rank 0; layers by stage). Layouts that do not divide the
// model are one clear usage error.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "backend/backend.h"
#include "checkpoint/native.h"
#include "checkpoint/safetensors.h"
#include "cli/run_util.h"
#include "parallel/group.h"
#include "train/checkpointing.h"
#include "train/convert.h"
#include "train/shard_layout.h"
#include "device_env.h"

namespace cs {
namespace {
namespace fs = std::filesystem;

class ConvertLayout : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = ::testing::TempDir() + "/cs_convert_layout_" + std::to_string(getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    // 4 heads, vocabulary 128, FFN 80: TP 2 and 4 divide everything; 2 layers for PP 2.
    ASSERT_EQ(0, test::run_binary("init --model tiny --num-attention-heads 4 --vocab-size 128 "
                                  "--make-vocab-size-divisible-by 1 --save " + dir_ + "/hf").status);
    for (auto [tag, flags] : {std::pair<const char*, const char*>{"n11", ""},
                              {"n22", "--tensor-model-parallel-size 2 --pipeline-model-parallel-size 2"},
                              {"n41", "--tensor-model-parallel-size 4"}}) {
      auto r = test::run_binary("convert --input " + dir_ + "/hf --output " + dir_ + "/" + tag + " " + flags);
      ASSERT_EQ(r.status, 0) << r.err;
    }
  }
  static std::vector<float> whole(const std::string& tag, const ParamSpec& s) {
    CheckpointReader r(dir_ + "/" + tag, 0);
    std::vector<float> v(static_cast<size_t>(s.shape.numel()));
    r.read_all(s.name, s.shape, v.data());
    return v;
  }
  static std::vector<float> file_tensor(const std::string& file, const std::string& name) {
    SafetensorsFile f(dir_ + "/n22/iter_0000000/" + file);
    std::vector<float> v(static_cast<size_t>(f.shape(name).numel()));
    f.read_f32(name, v.data(), int64_t(v.size()));
    return v;
  }
  static ModelConfig config() { return checkpoint_model_config(dir_ + "/n11"); }
  static std::string dir_;
};
std::string ConvertLayout::dir_;

bool bits_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Rows [r0, r0 + n) and columns [c0, c0 + m) of a (rows x cols) row-major matrix.
std::vector<float> box(const std::vector<float>& v, int64_t cols, int64_t r0, int64_t n, int64_t c0, int64_t m) {
  std::vector<float> out;
  for (int64_t r = r0; r < r0 + n; ++r)
    out.insert(out.end(), v.begin() + r * cols + c0, v.begin() + r * cols + c0 + m);
  return out;
}

TEST_F(ConvertLayout, ShardedLayoutsReadBackAsTp1BitForBit) {
  const ModelConfig cfg = config();
  ASSERT_EQ(cfg.num_heads, 4);
  for (const char* tag : {"n22", "n41"}) {
    const CheckpointReader reader(dir_ + "/" + tag, 0);
    const nlohmann::json& layout = reader.meta().at("layout");
    EXPECT_EQ(layout["tensor_model_parallel_size"], tag[1] - '0') << tag;
    EXPECT_EQ(layout["pipeline_model_parallel_size"], tag[2] - '0') << tag;
    for (const ParamSpec& s : param_specs(cfg)) EXPECT_TRUE(bits_equal(whole("n11", s), whole(tag, s))) << tag << " " << s.name;
    // And back to Hugging Face, byte for byte the original.
    auto r = test::run_binary(std::string("convert --input ") + dir_ + "/" + tag + " --output " + dir_ + "/back_" + tag);
    ASSERT_EQ(r.status, 0) << r.err;
    SafetensorsFile a(dir_ + "/hf/model.safetensors"), b(dir_ + "/back_" + tag + "/model.safetensors");
    ASSERT_EQ(a.names(), b.names());
    for (const auto& n : a.names()) {
      const Tensor x = a.tensor(n), y = b.tensor(n);
      ASSERT_EQ(x.nbytes(), y.nbytes()) << n;
      EXPECT_EQ(0, std::memcmp(x.data, y.data, x.nbytes())) << tag << " " << n;
    }
  }
  // The model loads straight from the sharded checkpoint too.
  SingleGroup tp("tp");
  auto m22 = load_model_weights(dir_ + "/n22", test::cpu_ctx(), tp, 1, 1);
  auto m11 = load_model_weights(dir_ + "/n11", test::cpu_ctx(), tp, 1, 1);
  const Tensor p = m22->params().flat_params(), q = m11->params().flat_params();
  EXPECT_EQ(0, std::memcmp(p.data, q.data, p.nbytes()));
}

TEST_F(ConvertLayout, EachRankFileHoldsItsSlice) {
  const ModelConfig cfg = config();
  const int64_t d = cfg.hidden_size, f = cfg.ffn_hidden_size, v = cfg.vocab_size;
  std::map<std::string, ParamSpec> spec;
  for (const ParamSpec& s : param_specs(cfg)) spec[s.name] = s;
  auto full = [&](const std::string& n) { return whole("n11", spec.at(n)); };
  // TP rank 1, stage 0: layer 0 and the embedding, not layer 1, not the (replicated) norms.
  SafetensorsFile r1s0(dir_ + "/n22/iter_0000000/model-tp01-pp000.safetensors");
  std::vector<std::string> names = r1s0.names();
  EXPECT_EQ(names.size(), 6u);  // embedding + W_pack, o_proj, gate, up, down of layer 0
  EXPECT_FALSE(r1s0.has("model.layers.1.self_attn.W_pack.weight"));
  EXPECT_FALSE(r1s0.has("model.layers.0.input_layernorm.weight"));
  const std::string wpack = "model.layers.0.self_attn.W_pack.weight";
  const int64_t h = d / 2;  // rank 1 holds heads 2-3: rows [h, d) of each of q, k, v
  std::vector<float> want = box(full(wpack), d, h, h, 0, d);
  for (int64_t blk : {1, 2}) {
    auto more = box(full(wpack), d, blk * d + h, h, 0, d);
    want.insert(want.end(), more.begin(), more.end());
  }
  EXPECT_EQ(r1s0.shape(wpack), (Shape{3 * h, d}));
  EXPECT_TRUE(bits_equal(file_tensor("model-tp01-pp000.safetensors", wpack), want));
  const std::string o = "model.layers.0.self_attn.o_proj.weight", down = "model.layers.0.mlp.down_proj.weight";
  EXPECT_TRUE(bits_equal(file_tensor("model-tp01-pp000.safetensors", o), box(full(o), d, 0, d, h, h)));
  EXPECT_TRUE(bits_equal(file_tensor("model-tp01-pp000.safetensors", down), box(full(down), f, 0, d, f / 2, f / 2)));
  const std::string up = "model.layers.0.mlp.up_proj.weight", emb = "model.embed_tokens.weight";
  EXPECT_TRUE(bits_equal(file_tensor("model-tp01-pp000.safetensors", up), box(full(up), d, f / 2, f / 2, 0, d)));
  EXPECT_TRUE(bits_equal(file_tensor("model-tp01-pp000.safetensors", emb), box(full(emb), d, v / 2, v / 2, 0, d)));
  // TP rank 0, last stage: layer 1, final norm (stored once, here), lm_head's first half.
  SafetensorsFile r0s1(dir_ + "/n22/iter_0000000/model-tp00-pp001.safetensors");
  EXPECT_TRUE(r0s1.has("model.norm.weight") && r0s1.has("model.layers.1.input_layernorm.weight"));
  EXPECT_FALSE(r0s1.has(emb));
  EXPECT_TRUE(bits_equal(file_tensor("model-tp00-pp001.safetensors", "lm_head.weight"),
                         box(full("lm_head.weight"), d, 0, v / 2, 0, d)));
  // The reader assembles a rank's slice of another layout from the TP 4 shards: TP 2 rank 1's W_pack.
  CheckpointReader r41(dir_ + "/n41", 0);
  const TpSlice sl = tp_slice(spec.at(wpack), cfg, 2, 1);
  std::vector<float> got;
  for (const RowBlock& b : sl.row_blocks) {
    std::vector<float> part(static_cast<size_t>(b.rows * d));
    r41.read(wpack, {b.global_row, 0}, Shape{b.rows, d}, part.data());
    got.insert(got.end(), part.begin(), part.end());
  }
  EXPECT_TRUE(bits_equal(got, want));
}

std::string file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// One row per read (rank slices start and end inside chunks, vocab-parallel ranks see chunks
// holding none of their rows): every shard byte-identical to the 64 MB-chunk conversion.
TEST_F(ConvertLayout, TinyChunksWriteTheSameFiles) {
  ConvertOptions o;
  o.input = dir_ + "/hf";
  o.output = dir_ + "/n22_rows";
  o.tp = o.pp = 2;
  o.chunk_bytes = 100;
  const ConvertReport rep = convert_checkpoint(o);
  EXPECT_EQ(rep.files, 4u);
  EXPECT_EQ(rep.bytes_written, rep.config.num_params() * 4);
  for (const char* tp : {"00", "01"})
    for (const char* pp : {"000", "001"}) {
      const std::string f = std::string("/iter_0000000/model-tp") + tp + "-pp" + pp + ".safetensors";
      EXPECT_EQ(file_bytes(dir_ + "/n22" + f), file_bytes(dir_ + "/n22_rows" + f)) << f;
    }
  o.input = dir_ + "/n22_rows";  // and back to bf16 Hugging Face shards, one row at a time
  o.output = dir_ + "/hf_rows";
  o.to = "hf";
  o.tp = o.pp = 1;
  o.dtype = DType::BF16;
  o.max_shard_bytes = 20000;
  convert_checkpoint(o);
  auto r = test::run_binary("convert --input " + dir_ + "/n22 --output " + dir_ + "/hf_big --dtype bf16 --max-shard-size 20000");
  ASSERT_EQ(r.status, 0) << r.err;
  for (const auto& e : fs::directory_iterator(dir_ + "/hf_big"))
    EXPECT_EQ(file_bytes(e.path().string()), file_bytes(dir_ + "/hf_rows/" + e.path().filename().string())) << e.path();
}

TEST_F(ConvertLayout, LayoutsThatDoNotDivideTheModelAreUsageErrors) {
  const std::string in = " --input " + dir_ + "/hf --output " + dir_ + "/bad";
  auto r = test::run_binary("convert" + in + " --tensor-model-parallel-size 3");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--tensor-model-parallel-size 3: does not divide the model's 4 attention heads"), std::string::npos) << r.err;
  r = test::run_binary("convert" + in + " --tensor-model-parallel-size 8");  // more ranks than heads
  EXPECT_EQ(r.status, 2);
  r = test::run_binary("convert" + in + " --pipeline-model-parallel-size 3");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("does not divide the model's 2 layers"), std::string::npos) << r.err;
  r = test::run_binary("convert" + in + " --tensor-model-parallel-size 0");
  EXPECT_EQ(r.status, 2);
  r = test::run_binary("convert" + in + " --to hf --tensor-model-parallel-size 2");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--to native"), std::string::npos) << r.err;
  // The 3-head fixture with TP 3: heads divide, the 101-token vocabulary does not.
  r = test::run_binary("convert --input " + std::string(CS_SOURCE_DIR) + "/tests/fixtures/model/rope --output " +
                       dir_ + "/bad --tensor-model-parallel-size 3");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("101 vocabulary entries"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--make-vocab-size-divisible-by"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ + "/bad/latest_checkpointed_iteration.txt"));
}

// --make-vocab-size-divisible-by pads the vocabulary for TP as train and Megatron's converter do:
// the 3-head fixture's 101 entries become 104 (divisible-by 8; the fixture's 3 heads and FFN 80
// admit no TP > 1), the new rows of the embedding and of lm_head copies of the last one;
// everything else bit for bit; the padded model loads, and converts back to a Hugging Face
// directory of vocabulary 104.
TEST_F(ConvertLayout, VocabularyPaddedForTensorParallelism) {
  const std::string fixture = std::string(CS_SOURCE_DIR) + "/tests/fixtures/model/rope";
  auto r = test::run_binary("convert --input " + fixture + " --output " + dir_ + "/pad3 --make-vocab-size-divisible-by 8");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("vocabulary 101 padded to 104"), std::string::npos) << r.err;
  const ModelConfig padded = checkpoint_model_config(dir_ + "/pad3");
  EXPECT_EQ(padded.vocab_size, 104);
  SafetensorsFile hf(fixture + "/model.safetensors");
  CheckpointReader ck(dir_ + "/pad3", 0);
  for (const ParamSpec& s : param_specs(padded)) {
    std::vector<float> got(static_cast<size_t>(s.shape.numel()));
    ck.read_all(s.name, s.shape, got.data());
    std::vector<float> want(static_cast<size_t>(hf.shape(s.name).numel()));
    hf.read_f32(s.name, want.data(), int64_t(want.size()));
    if (s.split == TpSplit::Vocab) {  // the padding rows repeat row 100
      const int64_t d = s.shape[1];
      const std::vector<float> last(want.end() - d, want.end());
      for (int k = 0; k < 3; ++k) want.insert(want.end(), last.begin(), last.end());
    }
    EXPECT_TRUE(bits_equal(got, want)) << s.name;
  }
  SingleGroup tp("tp");
  EXPECT_EQ(load_model_weights(dir_ + "/pad3", test::cpu_ctx(), tp, 1, 1)->config().vocab_size, 104);
  r = test::run_binary("convert --input " + dir_ + "/pad3 --output " + dir_ + "/pad3_hf --to hf");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(SafetensorsFile(dir_ + "/pad3_hf/model.safetensors").shape("lm_head.weight"), (Shape{104, 48}));
}

}  // namespace
}  // namespace cs
