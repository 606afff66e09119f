// Tensor, sequence and pipeline parallelism through the real binary under mpirun: TP2, TP2 with
// sequence parallelism x DP2 with the distributed optimizer, PP2, PP4, PP2 x TP2 with sequence
// parallelism and PP2 x DP2 train the same steps as one process (every iteration's loss and the
// validation loss within 1e-5 relative); each model-parallel rank writes its own checkpoint files,
// and a TP2 checkpoint resumes in one process and as TP2 x DP2, a TP2 x PP2 one as PP4, as DP4 and
// in one process, with the losses of the uninterrupted run; a Hugging Face model loads into TP2, PP2
// and interleaved PP2 with one process's first loss; the TP2 checkpoint converts to a Hugging Face
// model equal to the one process's weights; the interleaved schedule trains as one process and its
// checkpoints cross layouts. The model has 4 layers, so every pipeline size up to 4 splits it.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <tuple>
#include <vector>

#include "checkpoint/safetensors.h"
#include "closeness.h"
#include "parallel_runs.h"

namespace cs {
namespace {
namespace fs = std::filesystem;

using ModelParallelTraining = test::ParallelRuns;

TEST_P(ModelParallelTraining, TpAndSequenceParallelTrainAsOneProcess) {
  ASSERT_EQ(0, train(0, "one", 10));
  ASSERT_EQ(0, train(2, "tp2", 10, "--tensor-model-parallel-size 2")) << "see " << dir_ << "/tp2.log";
  ASSERT_EQ(0, train(4, "sp", 10, "--tensor-model-parallel-size 2 --sequence-parallel --use-distributed-optimizer"))
      << "see " << dir_ << "/sp.log";
  expect_same_losses("one", "tp2", 1, 10);
  expect_same_losses("one", "sp", 1, 10);
  // Each tensor-parallel rank's files; the replicated norm weights once, in rank 0's.
  const std::string it = dir_ + "/tp2/iter_0000010/";
  for (const char* f : {"model-tp00-pp000.safetensors", "model-tp01-pp000.safetensors",
                        "optim-tp00-pp000-dp000.safetensors", "optim-tp01-pp000-dp000.safetensors"})
    EXPECT_TRUE(fs::exists(it + f)) << f;
  const SafetensorsFile r1 = SafetensorsFile::open(it + "model-tp01-pp000.safetensors");
  EXPECT_EQ(r1.tensor("model.layers.0.self_attn.W_pack.weight").shape, (Shape{72, 48}));
  EXPECT_FALSE(r1.has("model.norm.weight"));
  // The checkpoint's whole tensors, through convert, are the one process's within fp32 order.
  ASSERT_EQ(0, test::run_binary("convert --input " + dir_ + "/tp2 --output " + dir_ + "/tp2_hf --to hf").status);
  const SafetensorsFile want = SafetensorsFile::open(dir_ + "/one/hf/model.safetensors");
  const SafetensorsFile got = SafetensorsFile::open(dir_ + "/tp2_hf/model.safetensors");
  for (const std::string& name : want.names()) {
    std::vector<float> a(size_t(want.tensor(name).numel())), b(a.size());
    want.read_f32(name, a.data(), int64_t(a.size()));
    got.read_f32(name, b.data(), int64_t(b.size()));
    // fp32 summation order differs (partial sums over ranks); AdamW divides by sqrt(v), which
    // magnifies it in the rows of tokens that barely occur (gradients ~1e-9): measured up to 9e-6
    // absolute there after 10 steps of lr 3e-3, 2e-7 elsewhere.
    EXPECT_TRUE(test::all_close(b.data(), a.data(), int64_t(a.size()), 3e-5, 1e-4, name));
  }
}

TEST_P(ModelParallelTraining, CheckpointResumesInOtherLayouts) {
  ASSERT_EQ(0, train(2, "tp2", 10, "--tensor-model-parallel-size 2"));
  ASSERT_EQ(0, train(2, "half", 10, "--tensor-model-parallel-size 2 --exit-interval 5"));
  fs::copy(dir_ + "/half", dir_ + "/half_sp", fs::copy_options::recursive);
  ASSERT_EQ(0, train(0, "half", 10, "--load " + dir_ + "/half")) << "see " << dir_ << "/half.log";
  expect_same_losses("tp2", "half", 6, 10);
  ASSERT_EQ(0, train(4, "half_sp", 10,
                     "--tensor-model-parallel-size 2 --sequence-parallel --use-distributed-optimizer --load " + dir_ +
                         "/half_sp"))
      << "see " << dir_ << "/half_sp.log";
  expect_same_losses("tp2", "half_sp", 6, 10);
}

TEST_P(ModelParallelTraining, HuggingFaceModelLoadsIntoTensorAndPipelineParallelRanks) {
  ASSERT_EQ(0, train(0, "one", 2));
  const std::string hf = "--load " + dir_ + "/one/hf --finetune";
  ASSERT_EQ(0, train(0, "ft1", 2, hf));
  ASSERT_EQ(0, train(2, "ft2", 2, hf + " --tensor-model-parallel-size 2 --sequence-parallel"))
      << "see " << dir_ << "/ft2.log";
  expect_same_losses("ft1", "ft2", 1, 2);
  ASSERT_EQ(0, train(2, "ft_pp", 2, hf + " --pipeline-model-parallel-size 2")) << "see " << dir_ << "/ft_pp.log";
  expect_same_losses("ft1", "ft_pp", 1, 2);
  ASSERT_EQ(0, train(2, "ft_ppv", 2, hf + " --pipeline-model-parallel-size 2 --num-layers-per-virtual-pipeline-stage 1"))
      << "see " << dir_ << "/ft_ppv.log";
  expect_same_losses("ft1", "ft_ppv", 1, 2);
}

TEST_P(ModelParallelTraining, PipelineStagesTrainAsOneProcess) {
  ASSERT_EQ(0, train(0, "one", 10));
  for (const auto& [ranks, name, flags] : std::vector<std::tuple<int, std::string, std::string>>{
           {2, "pp2", "--pipeline-model-parallel-size 2"},
           {4, "pp4", "--pipeline-model-parallel-size 4"},
           {4, "pp2tp2", "--pipeline-model-parallel-size 2 --tensor-model-parallel-size 2 --sequence-parallel"},
           {4, "pp2dp2", "--pipeline-model-parallel-size 2 --use-distributed-optimizer"}}) {
    ASSERT_EQ(0, train(ranks, name, 10, flags)) << "see " << dir_ << "/" << name << ".log";
    expect_same_losses("one", name, 1, 10);
  }
  const std::string it = dir_ + "/pp2tp2/iter_0000010/";
  for (const char* f : {"model-tp00-pp000.safetensors", "model-tp01-pp000.safetensors", "model-tp00-pp001.safetensors",
                        "model-tp01-pp001.safetensors", "optim-tp01-pp001-dp000.safetensors"})
    EXPECT_TRUE(fs::exists(it + f)) << f;
  const SafetensorsFile last = SafetensorsFile::open(it + "model-tp00-pp001.safetensors");
  EXPECT_TRUE(last.has("lm_head.weight") && last.has("model.layers.3.mlp.down_proj.weight"));
  EXPECT_FALSE(last.has("model.embed_tokens.weight") || last.has("model.layers.1.mlp.down_proj.weight"));
  // Stopped at 5 as TP2 x PP2, resumed as PP4, as DP4 and in one process.
  ASSERT_EQ(0, train(4, "half", 10, "--pipeline-model-parallel-size 2 --tensor-model-parallel-size 2 --exit-interval 5"));
  fs::copy(dir_ + "/half", dir_ + "/half_one", fs::copy_options::recursive);
  fs::copy(dir_ + "/half", dir_ + "/half_dp4", fs::copy_options::recursive);
  ASSERT_EQ(0, train(4, "half", 10, "--pipeline-model-parallel-size 4 --load " + dir_ + "/half"))
      << "see " << dir_ << "/half.log";
  expect_same_losses("one", "half", 6, 10);
  ASSERT_EQ(0, train(0, "half_one", 10, "--load " + dir_ + "/half_one"));
  expect_same_losses("one", "half_one", 6, 10);
  ASSERT_EQ(0, train(4, "half_dp4", 10, "--load " + dir_ + "/half_dp4")) << "see " << dir_ << "/half_dp4.log";
  expect_same_losses("one", "half_dp4", 6, 10);
}

// Megatron's interleaved schedule (--num-layers-per-virtual-pipeline-stage 1: 2 chunks of 1 layer per
// rank of PP2; rank 0 holds layers 0 and 2, rank 1 layers 1 and 3) trains as one process, alone,
// with TP2 and with DP2 and the distributed optimizer, with the same final weights; its checkpoint names each tensor by its global layer,
// so it resumes as contiguous PP2 stages, and a contiguous PP2 checkpoint resumes interleaved.
TEST_P(ModelParallelTraining, InterleavedPipelineTrainsAsOneProcess) {
  const std::string pp2 = "--pipeline-model-parallel-size 2", v = " --num-layers-per-virtual-pipeline-stage 1";
  ASSERT_EQ(0, train(0, "one", 10));
  ASSERT_EQ(0, train(2, "pp2v", 10, pp2 + v)) << "see " << dir_ << "/pp2v.log";
  expect_same_losses("one", "pp2v", 1, 10);
  ASSERT_EQ(0, train(4, "pp2tp2v", 10, pp2 + v + " --tensor-model-parallel-size 2 --sequence-parallel"))
      << "see " << dir_ << "/pp2tp2v.log";
  expect_same_losses("one", "pp2tp2v", 1, 10);
  // With data parallelism and the distributed optimizer (2 micro-batches per rank: every forward first).
  ASSERT_EQ(0, train(4, "pp2dp2v", 10, pp2 + v + " --use-distributed-optimizer")) << "see " << dir_ << "/pp2dp2v.log";
  expect_same_losses("one", "pp2dp2v", 1, 10);
  // Newer Megatron's name for the same schedule: 2 virtual stages (chunks) per pipeline rank.
  ASSERT_EQ(0, train(2, "pp2vs", 10, pp2 + " --num-virtual-stages-per-pipeline-rank 2")) << "see " << dir_ << "/pp2vs.log";
  expect_same_losses("pp2v", "pp2vs", 1, 10, 0.0);
  const SafetensorsFile first = SafetensorsFile::open(dir_ + "/pp2v/iter_0000010/model-tp00-pp000.safetensors");
  EXPECT_TRUE(first.has("model.embed_tokens.weight") && first.has("model.layers.0.mlp.down_proj.weight") &&
              first.has("model.layers.2.mlp.down_proj.weight"));
  EXPECT_FALSE(first.has("model.layers.1.mlp.down_proj.weight") || first.has("lm_head.weight"));
  // The final weights, assembled by convert from the interleaved ranks' files.
  ASSERT_EQ(0, test::run_binary("convert --input " + dir_ + "/pp2v --output " + dir_ + "/pp2v_hf --to hf").status);
  const SafetensorsFile want = SafetensorsFile::open(dir_ + "/one/hf/model.safetensors");
  const SafetensorsFile got = SafetensorsFile::open(dir_ + "/pp2v_hf/model.safetensors");
  for (const std::string& name : want.names()) {
    std::vector<float> a(size_t(want.tensor(name).numel())), b(a.size());
    want.read_f32(name, a.data(), int64_t(a.size()));
    got.read_f32(name, b.data(), int64_t(b.size()));
    // The tolerance of the TP2 weights above (fp32 summation order, magnified by AdamW in rare rows).
    EXPECT_TRUE(test::all_close(b.data(), a.data(), int64_t(a.size()), 3e-5, 1e-4, name));
  }
  // Interleaved -> contiguous stages, and contiguous -> interleaved.
  ASSERT_EQ(0, train(2, "half_v", 10, pp2 + v + " --exit-interval 5"));
  ASSERT_EQ(0, train(2, "half_v", 10, pp2 + " --load " + dir_ + "/half_v")) << "see " << dir_ << "/half_v.log";
  expect_same_losses("one", "half_v", 6, 10);
  ASSERT_EQ(0, train(2, "half_plain", 10, pp2 + " --exit-interval 5"));
  ASSERT_EQ(0, train(2, "half_plain", 10, pp2 + v + " --load " + dir_ + "/half_plain"))
      << "see " << dir_ << "/half_plain.log";
  expect_same_losses("one", "half_plain", 6, 10);
}

INSTANTIATE_TEST_SUITE_P(Positions, ModelParallelTraining, ::testing::Values("rope", "alibi"),
                         [](const auto& info) { return info.param; });

// A rank SIGKILLed in the middle of a TP2 run: the job ends, non-zero, well within the deadline
// (the other rank would otherwise wait in a collective forever).
TEST(ModelParallelFaults, KilledRankEndsTheJob) {
  if (test::run_shell("mpirun --version > /dev/null 2>&1") != 0) GTEST_SKIP() << "mpirun not installed";
  const std::string dir = ::testing::TempDir() + "/cs_tp_kill_" + std::to_string(getpid());
  fs::create_directories(dir);
  ASSERT_EQ(0, test::run_binary("synth-data --output-prefix " + dir + "/data --vocab-size 101 --num-docs 60").status);
  const std::string train = test::kMpirun + "2 " + CS_BINARY +
                            " train --model tiny --num-attention-heads 4 --vocab-size 101 --make-vocab-size-divisible-by 2"
                            " --seq-length 16 --micro-batch-size 2 --global-batch-size 4 --train-iters 100000 --lr 1e-3"
                            " --log-interval 1 --tensor-model-parallel-size 2 --distributed-timeout-minutes 1 --data-path " +
                            dir + "/data --save " + dir + "/run";
  // Rank 1 is the process whose environment says OMPI_COMM_WORLD_RANK=1; killed once an iteration
  // was logged.
  const std::string killer =
      "for i in $(seq 200); do grep -q ' iteration  *[0-9]*/' " + dir + "/out.log 2>/dev/null && break; sleep 0.05; done; "
      "for p in $(pgrep -f -- '--save " + dir + "/run'); do "
      "if tr '\\0' '\\n' < /proc/$p/environ 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=1; then kill -9 $p; fi; done";
  const auto start = std::chrono::steady_clock::now();
  const int rc = test::run_shell("(" + killer + ") & " + train + " > " + dir + "/out.log 2>&1; rc=$?; wait; exit $rc");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::ifstream out(dir + "/out.log");
  const std::string text((std::istreambuf_iterator<char>(out)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find(" iteration "), std::string::npos) << "training never started: " << text;
  EXPECT_NE(rc, 0);
  EXPECT_LT(seconds, 50) << "the job outlived its killed rank";
  fs::remove_all(dir);
}

TEST(ModelParallelFlags, SplitsTheModelCannotTakeAreOneLine) {
  if (test::run_shell("mpirun --version > /dev/null 2>&1") != 0) GTEST_SKIP() << "mpirun not installed";
  const std::string dir = ::testing::TempDir() + "/cs_tp_flags_" + std::to_string(getpid());
  fs::create_directories(dir);
  ASSERT_EQ(0, test::run_binary("synth-data --output-prefix " + dir + "/data --vocab-size 101 --num-docs 20").status);
  const std::string base = test::kMpirun + "2 " + CS_BINARY +
                           " train --model tiny --vocab-size 101 --micro-batch-size 1 --global-batch-size 2 "
                           "--train-iters 1 --lr 1e-3 --tensor-model-parallel-size 2 --data-path " + dir + "/data ";
  for (const auto& [flags, needle] : std::vector<std::pair<std::string, std::string>>{
           {"--seq-length 8", "does not divide the model's 3 attention heads"},
           {"--seq-length 9 --num-attention-heads 4 --sequence-parallel",
            "--seq-length 9 is not a multiple of 2"},
           {"--seq-length 8 --num-attention-heads 4 --num-layers 3 --tensor-model-parallel-size 1 "
            "--pipeline-model-parallel-size 2",
            "--pipeline-model-parallel-size 2: does not divide the model's 3 layers"},
           {"--seq-length 8 --num-attention-heads 4 --num-layers-per-virtual-pipeline-stage 1",
            "--num-layers-per-virtual-pipeline-stage 1: the interleaved schedule needs --pipeline-model-parallel-size "
            "2 or more, got 1"},
           {"--seq-length 8 --num-attention-heads 4 --num-layers 4 --tensor-model-parallel-size 1 "
            "--pipeline-model-parallel-size 2 --num-layers-per-virtual-pipeline-stage 3",
            "the model's 4 layers are not a multiple of --pipeline-model-parallel-size 2 x 3"},
           {"--seq-length 8 --num-attention-heads 4 --num-layers 4 --tensor-model-parallel-size 1 "
            "--pipeline-model-parallel-size 2 --num-virtual-stages-per-pipeline-rank 3",
            "--num-virtual-stages-per-pipeline-rank 3: the 4 layers do not split into 2 x 3"}}) {
    const std::string log = dir + "/err.log";
    EXPECT_NE(test::run_shell(base + flags + " > " + log + " 2>&1"), 0) << flags;
    std::ifstream f(log);
    const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    EXPECT_NE(text.find(needle), std::string::npos) << flags << "\n" << text;
  }
  // Micro-batches per rank not a multiple of PP: one line, exit 2 (one process cannot be PP2, so
  // the run goes through mpirun; the pipeline-size refusal is checked in one process too).
  const std::string odd = test::kMpirun + "2 " + CS_BINARY +
                          " train --model tiny --vocab-size 101 --num-attention-heads 4 --num-layers 4 --seq-length 8 "
                          "--micro-batch-size 1 --global-batch-size 3 --train-iters 1 --lr 1e-3 "
                          "--pipeline-model-parallel-size 2 --num-layers-per-virtual-pipeline-stage 1 --data-path " +
                          dir + "/data > " + dir + "/err.log 2>&1";
  EXPECT_EQ(test::run_shell(odd), 2);
  std::ifstream f(dir + "/err.log");
  const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("runs micro-batches in groups of --pipeline-model-parallel-size 2, but each rank has 3"),
            std::string::npos) << text;
  const test::RunResult one = test::run_binary(
      "train --model tiny --vocab-size 101 --num-attention-heads 4 --seq-length 8 --micro-batch-size 1 --train-iters 1 "
      "--lr 1e-3 --num-layers-per-virtual-pipeline-stage 1 --data-path " + dir + "/data");
  EXPECT_EQ(one.status, 2);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace cs
