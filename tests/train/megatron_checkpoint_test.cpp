// Megatron-LM checkpoints (torch format) read as weights. The fixtures (tests/fixtures/megatron,
// tools/fixtures/make_megatron_fixture.py) were saved by Megatron-LM's own code from Megatron-core
// models, one process (fp32, iteration 3) and tensor x pipeline 2 x 2 (bf16, a release), and from
// Megatron-LM's legacy model (tensor-parallel 2), with the logits each one's own forward pass
// gives: our model on the loaded weights gives the same
// logits, through every entry point (loading the folder, converting it, training from it), and
// Megatron's dict (arguments, RNG states with numpy objects) is read as data.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "backend/host_copy.h"
#include "checkpoint/megatron.h"
#include "checkpoint/torch_zip_builder.h"
#include "cli/run_util.h"
#include "closeness.h"
#include "device_env.h"
#include "tolerances.h"
#include "train/checkpointing.h"
#include "train/convert.h"
#include "train/hf_model.h"
#include "train/megatron_source.h"

namespace cs {
namespace {
namespace fs = std::filesystem;

const std::string kFixtures = std::string(CS_SOURCE_DIR) + "/tests/fixtures/megatron/";

nlohmann::json reference() {
  std::ifstream in(kFixtures + "reference.json");
  return nlohmann::json::parse(in);
}

std::vector<float> logits_of(const std::string& dir, ModelConfig* cfg = nullptr) {
  const nlohmann::json ref = reference();
  std::vector<int32_t> tokens = ref["tokens"].get<std::vector<int32_t>>();
  std::vector<int32_t> targets(tokens.size(), 0);
  SingleGroup tp;
  test::DeviceEnv env;
  auto model = load_model_weights(dir, *env, tp, 1, int64_t(tokens.size()));
  if (cfg) *cfg = model->config();
  model->forward(tokens.data(), targets.data(), 1, int64_t(tokens.size()));
  return read_f32(*env, model->logits());
}

class Logits : public ::testing::TestWithParam<std::string> {};

TEST_P(Logits, OurForwardOnTheLoadedWeightsIsMegatronCores) {
  ModelConfig cfg;
  const std::vector<float> got = logits_of(kFixtures + GetParam(), &cfg);
  EXPECT_EQ(cfg.num_layers, 4);
  EXPECT_EQ(cfg.hidden_size, 64);
  EXPECT_EQ(cfg.num_heads, 4);
  EXPECT_EQ(cfg.ffn_hidden_size, 96);
  EXPECT_EQ(cfg.vocab_size, 96);  // Megatron's padded vocabulary: 91 to a multiple of 16 x TP
  EXPECT_EQ(cfg.max_seq_length, 32);
  EXPECT_EQ(cfg.position, PositionType::Rope);
  EXPECT_DOUBLE_EQ(cfg.rms_norm_eps, 1e-6);
  std::vector<float> want;
  const nlohmann::json ref = reference();
  for (const auto& row : ref["logits"][GetParam()])
    for (double x : row) want.push_back(float(x));
  ASSERT_EQ(got.size(), want.size());
  EXPECT_TRUE(test::all_close(got.data(), want.data(), int64_t(want.size()), tol::kModelAtol, 0, "logits"));
}

INSTANTIATE_TEST_SUITE_P(Layouts, Logits, ::testing::Values("tp1pp1", "tp2pp2", "legacy_tp2"));

class MegatronFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/cs_megatron_" + std::to_string(getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string copy(const std::string& name) {
    fs::copy(kFixtures + name, dir_ + "/" + name, fs::copy_options::recursive);
    return dir_ + "/" + name;
  }
  static std::string error_of(const std::string& root) {
    try {
      MegatronCheckpoint ck(root);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
  std::string dir_;
};

TEST_F(MegatronFolder, ReadsMegatronsDictAsData) {
  const MegatronCheckpoint a(kFixtures + "tp1pp1");
  EXPECT_FALSE(a.release());
  EXPECT_EQ(a.iteration(), 3);
  EXPECT_EQ(a.tp(), 1);
  EXPECT_EQ(a.pp(), 1);
  ASSERT_NE(a.scalar("iteration"), nullptr);
  EXPECT_EQ(a.scalar("iteration")->i, 3);
  EXPECT_EQ(a.scalar("checkpoint_version")->kind, TorchScalar::Kind::Float);
  EXPECT_DOUBLE_EQ(a.scalar("checkpoint_version")->f, 3.0);
  EXPECT_EQ(a.scalar("args.params_dtype")->s, "torch.float32");  // a global, never called
  EXPECT_EQ(a.scalar("args.normalization")->s, "RMSNorm");
  EXPECT_DOUBLE_EQ(a.scalar("args.lr")->f, 1e-4);
  // Megatron's RNG state: Python's random state, numpy's (an ndarray object), torch's (a tensor,
  // not kept: only the model's tensors are).
  EXPECT_EQ(a.scalar("rng_state.0.np_rng_state.0")->s, "MT19937");
  EXPECT_EQ(a.scalar("rng_state.0.np_rng_state.1")->kind, TorchScalar::Kind::Other);
  EXPECT_EQ(a.scalar("rng_state.0.random_rng_state.0")->i, 3);
  EXPECT_FALSE(a.file(0, 0).has("rng_state.0.torch_rng_state"));
  EXPECT_TRUE(a.file(0, 0).has("model.decoder.layers.3.mlp.linear_fc1.weight"));
  const MegatronCheckpoint b(kFixtures + "tp2pp2");
  EXPECT_TRUE(b.release());
  EXPECT_EQ(b.tp(), 2);
  EXPECT_EQ(b.pp(), 2);
  EXPECT_EQ(b.scalar("args.params_dtype")->s, "torch.bfloat16");
  EXPECT_EQ(b.file(1, 1).dtype("model.output_layer.weight"), DType::BF16);
  // Stage 1 numbers its layers from 0, as Megatron's torch format does.
  EXPECT_TRUE(b.file(1, 1).has("model.decoder.layers.1.self_attention.linear_qkv.weight"));
  EXPECT_FALSE(b.file(1, 1).has("model.decoder.layers.2.self_attention.linear_qkv.weight"));
}

TEST_F(MegatronFolder, ConvertedItIsTheSameModel) {
  // Hugging Face and native (under another layout) conversions hold the weights the folder does,
  // read in chunks of a few rows: they cut inside heads' QKV blocks and across ranks' rows.
  ConvertOptions o;
  o.input = kFixtures + "tp2pp2";
  o.output = dir_ + "/hf";
  o.to = "hf";
  o.chunk_bytes = 5 * 64 * 4;  // 5 rows of 64 floats
  EXPECT_EQ(convert_checkpoint(o).from, "megatron");
  EXPECT_EQ(logits_of(dir_ + "/hf"), logits_of(kFixtures + "tp2pp2"));
  o.output = dir_ + "/native";
  o.to = "native";
  o.tp = 2;
  convert_checkpoint(o);
  EXPECT_EQ(logits_of(dir_ + "/native"), logits_of(kFixtures + "tp2pp2"));
  EXPECT_NE(logits_of(kFixtures + "tp1pp1"), logits_of(kFixtures + "tp2pp2"));
}

TEST_F(MegatronFolder, IncompleteOrOtherFormatsAreOneLine) {
  const std::string root = copy("tp2pp2");
  EXPECT_TRUE(is_megatron_checkpoint(root));
  fs::remove_all(root + "/release/mp_rank_01_001");
  EXPECT_NE(error_of(root).find("3 rank folders for a 2 x 2 (tensor x pipeline) grid"), std::string::npos)
      << error_of(root);
  fs::remove_all(root + "/release");
  EXPECT_FALSE(is_megatron_checkpoint(root));
  EXPECT_NE(error_of(root).find("names no iteration folder present"), std::string::npos) << error_of(root);
  // Megatron's default format, torch_dist: recognised, refused with the way to re-save it.
  fs::create_directories(root + "/release");
  std::ofstream(root + "/release/.metadata") << "x";
  EXPECT_TRUE(is_megatron_checkpoint(root));
  EXPECT_NE(error_of(root).find("--ckpt-format torch_dist"), std::string::npos) << error_of(root);
  // An expert-parallel rank folder.
  const std::string other = copy("tp1pp1");
  fs::create_directories(other + "/iter_0000003/mp_rank_00_000_001");
  EXPECT_NE(error_of(other).find("expert-parallel checkpoints are not read"), std::string::npos) << error_of(other);
}

// The position type as Megatron-DeepSpeed and older Megatron-LM save it: an enum member (rotary 1,
// absolute 2, alibi 3), read by its value; a string as Megatron-LM saves it. A release of one
// rank with arguments only: an accepted type gets as far as counting the (missing) layers.
TEST_F(MegatronFolder, PositionTypesSavedAsEnumsAreReadByValue) {
  const auto error_for = [&](const std::function<void(testzip::PickleWriter&)>& position) {
    fs::remove_all(dir_ + "/m");
    fs::create_directories(dir_ + "/m/release/mp_rank_00");
    std::ofstream(dir_ + "/m/latest_checkpointed_iteration.txt") << "release";
    testzip::PickleWriter w;
    w.op(0x80).op(2).op('}').op('(').str("args").global("argparse", "Namespace").op(')').op(0x81).op('}').op('(');
    for (const char* n : {"num_layers", "hidden_size", "num_attention_heads", "ffn_hidden_size", "max_position_embeddings"})
      w.str(n).integer(std::string(n) == "num_attention_heads" ? 2 : 8);
    w.str("normalization").str("RMSNorm").str("swiglu").op(0x88).str("position_embedding_type");
    position(w);
    w.op('u').op('b').str("checkpoint_version").integer(3).str("model").op('}').op('u').op('.');
    EXPECT_TRUE(testzip::write_image(dir_ + "/m/release/mp_rank_00/model_optim_rng.pt",
                                     testzip::zip_image(testzip::torch_entries("archive", w.s, {}), false)));
    try {
      open_megatron_source(dir_ + "/m");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  const auto member = [](int value) {
    return [value](testzip::PickleWriter& w) {
      w.global("megatron.model.enums", "PositionEmbeddingType").op('(').integer(value).op('t').op('R');
    };
  };
  EXPECT_NE(error_for(member(3)).find("the stages hold 0 layers"), std::string::npos) << error_for(member(3));
  EXPECT_NE(error_for(member(1)).find("the stages hold 0 layers"), std::string::npos) << error_for(member(1));
  EXPECT_NE(error_for(member(2)).find("args.position_embedding_type is 'megatron.model.enums.PositionEmbeddingType "
                                      "member 2', expected rope (or alibi)"), std::string::npos)
      << error_for(member(2));
  EXPECT_NE(error_for([](testzip::PickleWriter& w) { w.str("alibi"); }).find("the stages hold 0 layers"), std::string::npos);
  EXPECT_NE(error_for([](testzip::PickleWriter& w) { w.str("learned_absolute"); })
                .find("args.position_embedding_type is 'learned_absolute'"), std::string::npos);
}

// Through the binary: a launch script's --load of a Megatron checkpoint trains from its weights
// exactly as from the converted Hugging Face directory; a non-release one needs --finetune.
TEST_F(MegatronFolder, TrainLoadsItAsItLoadsTheConvertedModel) {
  ASSERT_EQ(0, test::run_binary("synth-data --output-prefix " + dir_ + "/data --vocab-size 90 --num-docs 50").status);
  ConvertOptions o;
  o.input = kFixtures + "tp1pp1";
  o.output = dir_ + "/hf";
  o.to = "hf";
  convert_checkpoint(o);
  const std::string flags = "train --vocab-size 90 --make-vocab-size-divisible-by 16 --seq-length 16 --micro-batch-size 2 --global-batch-size 4 "
                            "--lr 1e-3 --train-iters 3 --log-interval 1 --eval-iters 0 --data-path " + dir_ + "/data ";
  const auto refused = test::run_binary(flags + "--load " + kFixtures + "tp1pp1");
  EXPECT_EQ(refused.status, 2) << refused.err;
  EXPECT_NE(refused.err.find("a Megatron-LM checkpoint of iteration 3, whose optimizer state and data position are "
                             "not read here. Hint: pass --finetune"), std::string::npos) << refused.err;
  const auto a = test::run_binary(flags + "--finetune --load " + kFixtures + "tp1pp1");
  ASSERT_EQ(a.status, 0) << a.err;
  EXPECT_NE(a.err.find("Megatron-LM checkpoint (iteration 3), its weights at iteration 0"), std::string::npos) << a.err;
  const auto b = test::run_binary(flags + "--finetune --load " + dir_ + "/hf");
  ASSERT_EQ(b.status, 0) << b.err;
  const auto losses = [](const std::string& out) {
    std::string s;
    for (size_t p = out.find("lm loss: "); p != std::string::npos; p = out.find("lm loss: ", p + 1))
      s += out.substr(p, out.find(' ', p + 9) - p) + "\n";
    return s;
  };
  EXPECT_FALSE(losses(a.out).empty()) << a.out;
  EXPECT_EQ(losses(a.out), losses(b.out));
  // A release needs no --finetune; the launch script's model flags are checked against its arguments.
  const auto c = test::run_binary(flags + "--num-layers 4 --hidden-size 64 --load " + kFixtures + "tp2pp2");
  EXPECT_EQ(c.status, 0) << c.err;
  const auto d = test::run_binary(flags + "--num-layers 6 --load " + kFixtures + "tp2pp2");
  EXPECT_NE(d.status, 0);
  EXPECT_NE(d.err.find("--num-layers 6"), std::string::npos) << d.err;
  // plan refuses what train refuses.
  const auto p = test::run_binary("plan" + flags.substr(5) + "--load " + kFixtures + "tp1pp1");
  EXPECT_EQ(p.status, 2) << p.err;
  EXPECT_NE(p.err.find("Hint: pass --finetune"), std::string::npos) << p.err;
}

// A Megatron checkpoint's folder is never written into: not as a run's --save (its tracker and
// iterations would mix with the checkpoint's, and --start-over would move them away), not as
// convert's --output; and --pretrained-checkpoint does not replace a Megatron --load.
TEST_F(MegatronFolder, ItsFolderIsNeverWrittenInto) {
  const std::string root = copy("tp1pp1");
  ASSERT_EQ(0, test::run_binary("synth-data --output-prefix " + dir_ + "/data --vocab-size 90 --num-docs 50").status);
  const std::string flags = "train --vocab-size 90 --make-vocab-size-divisible-by 16 --seq-length 16 "
                            "--micro-batch-size 2 --global-batch-size 4 --lr 1e-3 --train-iters 2 --eval-iters 0 "
                            "--data-path " + dir_ + "/data --finetune --load " + root;
  const auto save = test::run_binary(flags + " --save " + root + " --start-over");
  EXPECT_EQ(save.status, 2) << save.err;
  EXPECT_NE(save.err.find("--save " + root + ": holds a Megatron-LM checkpoint"), std::string::npos) << save.err;
  ConvertOptions o;
  o.input = kFixtures + "tp2pp2";
  o.output = root;
  try {
    convert_checkpoint(o);
    ADD_FAILURE() << "converted into a Megatron checkpoint's folder";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("already holds a Megatron-LM checkpoint"), std::string::npos) << e.what();
  }
  EXPECT_EQ(std::vector<std::string>({"iter_0000003", "latest_checkpointed_iteration.txt"}), [&] {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(root)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }());
  const auto pre = test::run_binary(flags + " --pretrained-checkpoint " + kFixtures + "tp2pp2");
  ASSERT_EQ(pre.status, 0) << pre.err;
  EXPECT_NE(pre.err.find("--load " + root + ": Megatron-LM checkpoint (iteration 3)"), std::string::npos) << pre.err;
}

}  // namespace
}  // namespace cs
