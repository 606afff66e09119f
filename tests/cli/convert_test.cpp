// chuanspeed convert: Hugging Face -> native -> Hugging Face is bit-exact for F32 and BF16
// weights (every tensor mapped, same names, same bytes); sharded output with an index loads back
// to the same values; F16 output; the seed converter's flags; bad requests are one clear line.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "checkpoint/hf_dir.h"
#include "checkpoint/safetensors.h"
#include "cli/run_util.h"
#include "core/error.h"
#include "train/hf_model.h"

namespace cs {
namespace {
namespace fs = std::filesystem;
const std::string kSrc = std::string(CS_SOURCE_DIR) + "/tests/fixtures/";

std::string out(const std::string& tag) {
  const std::string d = ::testing::TempDir() + "/cs_convert_" + tag + "_" + std::to_string(getpid());
  fs::remove_all(d);
  return d;
}

// Raw bytes of every tensor of a single-file safetensors.
std::map<std::string, std::string> raw(const std::string& path) {
  SafetensorsFile f(path);
  std::map<std::string, std::string> m;
  for (const auto& n : f.names()) {
    Tensor t = f.tensor(n);
    m[n] = std::string(static_cast<const char*>(t.data), t.nbytes()) + dtype_name(t.dtype) + t.shape.str();
  }
  return m;
}

// --max-shard-size / --device-memory: units as Transformers reads them; sizes that are not a
// positive whole number of bytes (NaN, infinite, overflowing, below one byte) are usage errors
// rather than an undefined float-to-integer cast (a negative shard limit, a "DOES NOT FIT").
TEST(Convert, ByteSizes) {
  EXPECT_EQ(parse_byte_size("10GB", "--f"), 10'000'000'000);
  EXPECT_EQ(parse_byte_size("2GiB", "--f"), int64_t(2) << 30);
  EXPECT_EQ(parse_byte_size("500mb", "--f"), 500'000'000);
  EXPECT_EQ(parse_byte_size("1.5KiB", "--f"), 1536);
  for (const char* bad : {"nan", "nanGB", "inf", "1e30GB", "0.4", "-1GB", "0", "GB", "10XB"})
    EXPECT_THROW(parse_byte_size(bad, "--f"), UsageError) << bad;
}

TEST(Convert, HfToNativeToHfIsBitExact) {
  for (auto [src, dtype] : {std::pair<std::string, std::string>{"eval/alibi-bf16", "bf16"}, {"model/rope", "fp32"}}) {
    const std::string native = out("native"), back = out("back");
    auto r = test::run_binary("convert --input " + kSrc + src + " --output " + native);
    ASSERT_EQ(r.status, 0) << r.err;
    r = test::run_binary("convert --input " + native + " --output " + back + " --dtype " + dtype);
    ASSERT_EQ(r.status, 0) << r.err;
    const auto a = raw(kSrc + src + "/model.safetensors"), b = raw(back + "/model.safetensors");
    HfWeights ca(kSrc + src), cb(back);  // the architecture survives too (positions included)
    for (const char* key : {"hidden_size", "num_hidden_layers", "vocab_size", "max_position_embeddings", "model_max_length"})
      EXPECT_EQ(ca.config().value(key, -1), cb.config().value(key, -1)) << key;
    EXPECT_EQ(a.size(), 17u);
    EXPECT_TRUE(a == b) << src;
  }
}

TEST(Convert, ShardedOutputWithIndexLoadsTheSameValues) {
  const std::string dir = out("sharded"), f16 = out("f16");
  auto r = test::run_binary("convert --input-model-dir " + kSrc + "model/rope --output-model-dir " + dir +
                            " --to hf --max-shard-size 20KB --tensor-model-parallel-size 1 --pipeline-model-parallel-size 1 --pse --merge-mlp");
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_TRUE(fs::exists(dir + "/model.safetensors.index.json"));
  HfWeights a(kSrc + "model/rope"), b(dir);
  ASSERT_EQ(a.names().size(), b.names().size());
  for (const auto& n : a.names()) {
    std::vector<float> x(size_t(a.shape(n).numel())), y(x.size());
    a.read_f32(n, x.data(), int64_t(x.size()));
    b.read_f32(n, y.data(), int64_t(y.size()));
    EXPECT_EQ(x, y) << n;
  }
  r = test::run_binary("convert --input " + kSrc + "eval/rope-f16 --output " + f16 + " --to hf --dtype fp16");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(raw(kSrc + "eval/rope-f16/model.safetensors") == raw(f16 + "/model.safetensors"));
}

TEST(Convert, BadRequestsAreOneClearLine) {
  auto r = test::run_binary("convert --input " + kSrc + "model/rope --output " + out("t") + " --type 7B");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--type 7B"), std::string::npos) << r.err;
  r = test::run_binary("convert --input " + kSrc + "model/rope --output " + out("t") + " --tensor-model-parallel-size 2");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--tensor-model-parallel-size 2"), std::string::npos) << r.err;
  r = test::run_binary("convert --input " + kSrc + "model/rope --output " + out("t") + " --dtype int8");
  EXPECT_EQ(r.status, 2);
  r = test::run_binary("convert --input " + kSrc + "model/rope --output " + out("t") + " --max-shard-size lots");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--max-shard-size lots"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace cs
