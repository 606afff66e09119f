// Bad input through the real binary: each case gives exactly one clear line on stderr naming the
// file, flag, tensor or value, and a non-zero exit status (2 for usage errors) -- never a crash.
#include <gtest/gtest.h>

#include "backend/backend.h"

#include <filesystem>
#include <functional>
#include <optional>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "checkpoint/safetensors.h"
#include "cli/run_util.h"

namespace cs {
namespace {
namespace fs = std::filesystem;
using test::run_binary;

class BadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/cs_bad_input_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    ASSERT_EQ(0, run_binary("init --model tiny --save " + dir_ + "/model").status);
    ASSERT_EQ(0, run_binary("synth-data --output-prefix " + dir_ + "/data --vocab-size 101 --num-docs 5").status);
  }
  // Expects a failure with `status`, one stderr line containing `needle`.
  void expect_error(const std::string& args, int status, const std::string& needle) {
    auto r = run_binary(args);
    EXPECT_EQ(r.status, status) << args << "\n" << r.err;
    // Exactly one error line, and it is the last thing printed (info lines may precede it).
    EXPECT_EQ(test::count_matching_lines(r.err, "error:"), 1) << r.err;
    std::string last = r.err.substr(0, r.err.find_last_not_of('\n') + 1);
    last = last.substr(last.find_last_of('\n') + 1);
    EXPECT_NE(last.find("error:"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << "stderr: " << r.err << "\nwanted: " << needle;
  }
  // Rewrites the model's weights, each tensor's shape as `edit` returns it (nullopt: dropped).
  void rewrite_model(const std::function<std::optional<Shape>(const std::string&, Shape)>& edit) {
    const std::string st = dir_ + "/model/model.safetensors";
    std::vector<std::vector<float>> keep;
    std::vector<NamedTensor> ts;
    {
      SafetensorsFile f = SafetensorsFile::open(st);
      for (const auto& name : f.names()) {
        const Tensor t = f.tensor(name);
        const std::optional<Shape> s = edit(name, t.shape);
        if (!s) continue;
        keep.emplace_back(size_t(t.numel()));
        f.read_f32(name, keep.back().data(), t.numel());
        ts.push_back({name, Tensor(keep.back().data(), *s)});
      }
    }
    write_safetensors(st, ts, {});
  }
  std::string eval_args(const std::string& model, const std::string& data) {
    return "eval --load " + model + " --data-path " + data + " --seq-length 8";
  }
  std::string dir_;
};

TEST_F(BadInput, GoodInputRunsFirst) {
  auto r = run_binary(eval_args(dir_ + "/model", dir_ + "/data"));
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("eval summary: documents 5"), std::string::npos) << r.out;
}

TEST_F(BadInput, UnknownFlag) { expect_error("eval --bogus-flag 3", 2, "--bogus-flag"); }
// --device: a build without the CUDA backend says so in one usage line, for every command that
// computes; an unknown device names the flag.
TEST_F(BadInput, DeviceNotInThisBuild) {
  const std::string train = "train --model tiny --vocab-size 101 --seq-length 8 --train-iters 1 --lr 1e-3 "
                            "--data-path " + dir_ + "/data";
#ifdef CS_WITH_CUDA
  // A CUDA build on a machine without a GPU: one line, a runtime failure (exit 1).
  if (cuda_device_count() == 0) {
    expect_error(train + " --device cuda", 1, "--device cuda: no CUDA device is visible");
    expect_error("generate --load " + dir_ + "/model --prompt-ids 1,2 --device cuda", 1, "no CUDA device is visible");
  }
#else
  expect_error(train + " --device cuda", 2, "--device cuda: this build of chuanspeed has no CUDA backend");
  expect_error(eval_args(dir_ + "/model", dir_ + "/data") + " --device cuda", 2, "no CUDA backend");
  expect_error("generate --load " + dir_ + "/model --prompt-ids 1,2 --device cuda", 2, "no CUDA backend");
#endif
  expect_error(eval_args(dir_ + "/model", dir_ + "/data") + " --device tpu", 2, "--device tpu: expected cpu or cuda");
}
// A misspelt flag names the nearest one; Megatron's underscore spelling names the dashed flag.
TEST_F(BadInput, MisspeltFlagSuggestsTheNearest) {
  expect_error("train --micro-batch-szie 2", 2, "unknown flag --micro-batch-szie. Did you mean --micro-batch-size?");
  expect_error("train --data_path x", 2, "Did you mean --data-path?");
  expect_error("eval --lod x", 2, "Did you mean --load?");
  const auto r = run_binary("train --zzzzzzzzzzzz 1");
  EXPECT_EQ(r.err.find("Did you mean"), std::string::npos) << r.err;  // nothing close: no guess
}

// A flag given twice keeps its last value (Megatron's argparse): flags appended to a launch
// script override the script's own.
TEST_F(BadInput, RepeatedFlagKeepsItsLastValue) {
  const auto r = run_binary("train --model tiny --vocab-size 101 --seq-length 8 --lr 1e-3 --log-interval 1 "
                            "--train-iters 5 --data-path " + dir_ + "/data --train-iters 2 --eval-iters 0");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(test::count_matching_lines(r.out, " iteration        2/       2 |"), 1) << r.out;
  EXPECT_EQ(test::count_matching_lines(r.out, "/       5 |"), 0) << r.out;
}

// stdout and stderr in one redirected file keep the order the lines were written in: the save
// and validation lines come before the --exit-interval line that follows them.
TEST_F(BadInput, RedirectedOutputKeepsItsOrder) {
  const std::string log = dir_ + "/out.log";
  const std::string cmd = std::string(CS_BINARY) + " train --model tiny --vocab-size 101 --seq-length 8 --lr 1e-3 "
                          "--log-interval 1 --train-iters 6 --exit-interval 3 --eval-interval 3 --eval-iters 1 --split 50,50,0 "
                          "--data-path " + dir_ + "/data --save " + dir_ + "/run > " + log + " 2>&1";
  ASSERT_EQ(0, std::system(cmd.c_str()));
  std::ifstream f(log);
  const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const size_t saved = text.find("saved checkpoint at iteration 3"), exit_line = text.find("--exit-interval 3");
  ASSERT_NE(saved, std::string::npos) << text;
  ASSERT_NE(exit_line, std::string::npos) << text;
  EXPECT_LT(text.find("validation loss at iteration 3"), saved) << text;
  EXPECT_LT(saved, exit_line) << text;
}

TEST_F(BadInput, UnknownCommand) { expect_error("frobnicate", 2, "frobnicate"); }
TEST_F(BadInput, MissingRequiredFlag) { expect_error("eval --load x", 2, "--data-path"); }
TEST_F(BadInput, BadFlagValue) {
  expect_error(eval_args(dir_ + "/model", dir_ + "/data") + " --micro-batch-size 0", 2, "--micro-batch-size");
}

TEST_F(BadInput, MissingDatasetFile) {
  expect_error(eval_args(dir_ + "/model", dir_ + "/nope"), 1, dir_ + "/nope.idx");
}

TEST_F(BadInput, MissingModelDirectory) {
  expect_error(eval_args(dir_ + "/no_model", dir_ + "/data"), 1, dir_ + "/no_model");
}

TEST_F(BadInput, WrongMagicIdx) {
  std::fstream f(dir_ + "/data.idx", std::ios::in | std::ios::out | std::ios::binary);
  f.write("XXIDIDX", 7);
  f.close();
  expect_error(eval_args(dir_ + "/model", dir_ + "/data"), 1, "data.idx");
}

TEST_F(BadInput, TruncatedIdx) {
  fs::resize_file(dir_ + "/data.idx", fs::file_size(dir_ + "/data.idx") - 9);
  expect_error(eval_args(dir_ + "/model", dir_ + "/data"), 1, "data.idx");
}

TEST_F(BadInput, TruncatedBin) {
  fs::resize_file(dir_ + "/data.bin", fs::file_size(dir_ + "/data.bin") / 2);
  expect_error(eval_args(dir_ + "/model", dir_ + "/data"), 1, "data.bin");
}

TEST_F(BadInput, WeightOfTheWrongShape) {
  rewrite_model([](const std::string& name, Shape s) -> std::optional<Shape> {
    if (name == "model.layers.1.mlp.down_proj.weight") std::swap(s.dims[0], s.dims[1]);  // transposed
    return s;
  });
  expect_error(eval_args(dir_ + "/model", dir_ + "/data"), 1, "model.layers.1.mlp.down_proj.weight");
}

TEST_F(BadInput, MissingWeight) {
  rewrite_model([](const std::string& name, Shape s) -> std::optional<Shape> {
    if (name == "model.norm.weight") return std::nullopt;  // dropped
    return s;
  });
  expect_error(eval_args(dir_ + "/model", dir_ + "/data"), 1, "model.norm.weight");
}

TEST_F(BadInput, TokenIdBeyondTheVocabulary) {
  // A dataset made for a 1000-token vocabulary against a 101-token model.
  ASSERT_EQ(0, run_binary("synth-data --output-prefix " + dir_ + "/big --vocab-size 1000 --num-docs 5").status);
  expect_error(eval_args(dir_ + "/model", dir_ + "/big"), 1, "outside the vocabulary [0, 101)");
}

TEST_F(BadInput, CorruptConfig) {
  std::ofstream(dir_ + "/model/config.json") << "{\"hidden_size\": 48,";
  expect_error(eval_args(dir_ + "/model", dir_ + "/data"), 1, "config.json");
}

TEST_F(BadInput, InstructionDatasetFlags) {
  // synth-data writes PREFIX.bin/.idx: not an instruction dataset (no _text_document, no mask).
  const std::string train = "train --model tiny --vocab-size 101 --seq-length 16 --micro-batch-size 2 --train-iters 1 --lr 1e-3 ";
  expect_error(train + "--data-path " + dir_ + "/data --is-instruction-dataset", 2, "expected PREFIX_text_document");
  fs::copy_file(dir_ + "/data.bin", dir_ + "/qa_text_document.bin");
  fs::copy_file(dir_ + "/data.idx", dir_ + "/qa_text_document.idx");
  expect_error(train + "--data-path " + dir_ + "/qa_text_document --is-instruction-dataset", 1,
               "qa_loss_mask_document.idx: not found");
  expect_error(eval_args(dir_ + "/model", dir_ + "/qa_text_document") + " --is-instruction-dataset", 1,
               "qa_loss_mask_document.idx: not found");
  expect_error(train + "--data-path 0.5 " + dir_ + "/qa_text_document 0.5 " + dir_ +
                   "/qa_text_document --is-instruction-dataset", 2, "one PREFIX_text_document (no weights)");
  // On pretraining data they work from the end-of-document id, which a bare --vocab-size leaves unknown.
  expect_error(train + "--data-path " + dir_ + "/data --reset-attention-mask --reset-position-ids", 2,
               "--reset-attention-mask: the end-of-document id is unknown (no tokenizer given)");
  expect_error(train + "--data-path " + dir_ + "/data --eod-mask-loss", 2, "--eod-mask-loss: the end-of-document id");
  expect_error(train + "--data-path " + dir_ + "/qa_text_document --is-instruction-dataset --reset-position-ids", 2,
               "--reset-position-ids without --reset-attention-mask");
  expect_error(train + "--data-path " + dir_ + "/data --threads 0", 2, "--threads");
}

// oneDNN limited to AVX2 (as on a CPU without AVX-512) has no bf16 GEMM: one line, exit 1.
TEST_F(BadInput, Bf16WithoutABf16Gemm) {
  ASSERT_EQ(0, setenv("ONEDNN_MAX_CPU_ISA", "AVX2", 1));
  expect_error("train --model tiny --vocab-size 101 --seq-length 16 --micro-batch-size 2 --train-iters 1 --lr 1e-3 "
               "--data-path " + dir_ + "/data --bf16", 1, "no bf16 GEMM on this CPU");
  unsetenv("ONEDNN_MAX_CPU_ISA");
}

TEST_F(BadInput, Fp16AndBf16Together) {
  const std::string train = "train --model tiny --vocab-size 101 --seq-length 16 --micro-batch-size 2 --train-iters 1 --lr 1e-3 ";
  expect_error(train + "--data-path " + dir_ + "/data --fp16 --bf16", 2, "--fp16 and --bf16");
  const std::string ds = dir_ + "/ds_bf16.json";
  std::ofstream(ds) << R"({"train_micro_batch_size_per_gpu": 2, "bf16": {"enabled": true}})";
  expect_error(train + "--data-path " + dir_ + "/data --fp16 --deepspeed --deepspeed_config " + ds, 2,
               "--fp16 and --bf16");
}

// DeepSpeed's optimizer weight_decay would replace an increasing weight decay's start unseen.
TEST_F(BadInput, DeepSpeedWeightDecayWithAnIncrement) {
  const std::string ds = dir_ + "/ds_wd.json";
  std::ofstream(ds) << R"({"train_micro_batch_size_per_gpu": 2, "optimizer": {"type": "Adam", "params": {"weight_decay": 0.3}}})";
  expect_error("train --model tiny --vocab-size 101 --seq-length 16 --micro-batch-size 2 --train-iters 1 --lr 1e-3 "
               "--data-path " + dir_ + "/data --weight-decay-incr-style linear --start-weight-decay 0 "
               "--end-weight-decay 0.1 --deepspeed --deepspeed_config " + ds, 2,
               "optimizer.params.weight_decay with --weight-decay-incr-style linear: one weight decay setting");
}

}  // namespace
}  // namespace cs
