// Tensor and sequence parallelism through the real binary under mpirun: TP2, and TP2 with sequence
// parallelism x DP2 with the distributed optimizer, train the same steps as one process (every
// iteration's loss and the validation loss within 1e-5 relative); each tensor-parallel rank writes
// its own checkpoint files, and a TP2 checkpoint resumes in one process and as TP2 x DP2 with the
// losses of the uninterrupted run; a Hugging Face model loads into TP2 with one process's first
// loss; the TP2 checkpoint converts to a Hugging Face model equal to the one process's weights.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "checkpoint/safetensors.h"
#include "closeness.h"
#include "parallel_runs.h"

namespace cs {
namespace {
namespace fs = std::filesystem;

using TensorParallelTraining = test::ParallelRuns;

TEST_P(TensorParallelTraining, TpAndSequenceParallelTrainAsOneProcess) {
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
    EXPECT_TRUE(test::all_close(b.data(), a.data(), int64_t(a.size()), 1e-6, 1e-4, name));
  }
}

TEST_P(TensorParallelTraining, CheckpointResumesInOtherLayouts) {
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

TEST_P(TensorParallelTraining, HuggingFaceModelLoadsIntoTensorParallelRanks) {
  ASSERT_EQ(0, train(0, "one", 2));
  const std::string hf = "--load " + dir_ + "/one/hf --finetune";
  ASSERT_EQ(0, train(0, "ft1", 2, hf));
  ASSERT_EQ(0, train(2, "ft2", 2, hf + " --tensor-model-parallel-size 2 --sequence-parallel"))
      << "see " << dir_ << "/ft2.log";
  expect_same_losses("ft1", "ft2", 1, 2);
}

INSTANTIATE_TEST_SUITE_P(Positions, TensorParallelTraining, ::testing::Values("rope", "alibi"),
                         [](const auto& info) { return info.param; });

TEST(TensorParallelFlags, SplitsTheModelCannotTakeAreOneLine) {
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
            "--seq-length 9 is not a multiple of 2"}}) {
    const std::string log = dir + "/err.log";
    EXPECT_NE(test::run_shell(base + flags + " > " + log + " 2>&1"), 0) << flags;
    std::ifstream f(log);
    const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    EXPECT_NE(text.find(needle), std::string::npos) << flags << "\n" << text;
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace cs
