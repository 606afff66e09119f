// train --is-instruction-dataset: on samples whose prompts are random tokens and whose answer is
// always the same short phrase, the prompt-masked loss falls below 0.05 nats while the same run
// with every token trained stays near the prompts' entropy (the loss really ignores the prompts);
// packed runs resume bit-identically (the packing order is a function of the seed); the logged
// records count the trained tokens.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <random>

#include "data/sft_test_util.h"
#include "device_env.h"
#include "train/datasets.h"
#include "train/trainer.h"
#include "train/validation.h"

namespace cs {
namespace {

constexpr int64_t kPrompt = 8, kPromptVocab = 60;
const std::vector<int32_t> kAnswer = {70, 71, 72, 2};  // the fixed answer, then EOS

// 400 samples: kPrompt random tokens in [3, 3 + kPromptVocab), then kAnswer. all_trained: the mask
// marks every token (an unmasked run on the same tokens).
std::string sft_corpus(const std::string& name, bool all_trained) {
  const std::string dir = ::testing::TempDir() + "/cs_sft_" + name + "_" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string text = dir + "/qa_text_document";
  std::mt19937 rng(11);
  test::write_sft_dataset(text, 400, [&](int, std::vector<int32_t>& ids, std::vector<int32_t>& mask) {
    for (int64_t i = 0; i < kPrompt; ++i) {
      ids.push_back(3 + int32_t(rng() % kPromptVocab));
      mask.push_back(all_trained ? 1 : 0);
    }
    for (int32_t a : kAnswer) {
      ids.push_back(a);
      mask.push_back(1);
    }
  });
  return text;
}

TrainArgs sft_args(const std::string& data, int64_t iters) {
  TrainArgs a;
  a.micro_batch = 4;
  a.global_batch = 8;
  a.train_iters = iters;
  a.seq_length = 63;  // 5 samples of 12 tokens per packed sequence
  a.data_path = {data};
  a.split = "100,0,0";
  a.instruction = true;
  a.pack = true;
  a.lr = {1e-2, 1e-3, 5 * 8, iters * 8, LrDecay::Cosine};  // in samples
  a.log_interval = 10;
  a.print_log = false;
  a.eval_iters = 0;
  return a;
}

double final_loss(const std::string& data, int64_t iters) {
  SingleGroup world, tp;
  test::DeviceEnv env;
  Model m(model_preset("tiny"), *env, tp, 4, 64);
  m.params().init(*env, 1);
  const TrainResult r = train(m, sft_args(data, iters), world);
  double tail = 0;  // the mean of the last 5 iterations
  for (size_t i = r.losses.size() - 5; i < r.losses.size(); ++i) tail += r.losses[i] / 5;
  return tail;
}

TEST(SftTrain, MaskedLossIgnoresThePrompts) {
  const double masked = final_loss(sft_corpus("masked", false), 50);
  const double unmasked = final_loss(sft_corpus("unmasked", true), 50);
  // 7 of every 11 targets of the unmasked run are uniform over 60 prompt tokens: ln 60 = 4.09.
  const double floor = 7.0 / 11.0 * std::log(double(kPromptVocab));
  std::printf("masked %.4f, unmasked %.4f (prompts' entropy floor %.4f)\n", masked, unmasked, floor);
  EXPECT_LT(masked, 0.05);
  EXPECT_GT(unmasked, 0.9 * floor) << "the prompts' entropy floor is " << floor;
}

TEST(SftTrain, PackedRunResumesBitIdenticallyAndCountsTrainedTokens) {
  const std::string data = sft_corpus("resume", false);
  const std::string save = ::testing::TempDir() + "/cs_sft_resume_run_" + std::to_string(getpid());
  std::filesystem::remove_all(save);
  auto run = [&](int64_t exit_interval, bool resume) {
    SingleGroup world, tp;
    test::DeviceEnv env;
    Model m(model_preset("tiny"), *env, tp, 4, 64);
    m.params().init(*env, 2);
    TrainArgs a = sft_args(data, 20);
    a.save_dir = save;
    a.exit_interval = exit_interval;
    if (resume) a.resume_dir = save;
    return train(m, a, world);
  };
  const TrainResult whole = [&] {
    std::filesystem::remove_all(save);
    return run(0, false);
  }();
  std::filesystem::remove_all(save);
  const TrainResult first = run(10, false), second = run(0, true);
  ASSERT_EQ(first.losses.size(), 10u);
  ASSERT_EQ(second.losses.size(), 10u);
  for (size_t i = 0; i < 10; ++i) {
    EXPECT_EQ(first.losses[i], whole.losses[i]) << i;
    EXPECT_EQ(second.losses[i], whole.losses[10 + i]) << 10 + i;
  }
  // Every sample's 4 answer tokens are trained; the first (predicted from the prompt's last token)
  // and the rest all count: 4 per sample, 5 samples per sequence, 8 sequences per iteration.
  ASSERT_FALSE(whole.records.empty());
  EXPECT_EQ(whole.records[0].trained_tokens, 10 * 8 * 5 * 4);
}

// Megatron's end of training on instruction data: the valid split's next batches, then the test
// split's from its start, each the per-token loss over its counted targets, as in training.
TEST(SftTrain, EndOfTrainingEvaluatesTheInstructionSplits) {
  SingleGroup world, tp;
  test::DeviceEnv env;
  Model m(model_preset("tiny"), *env, tp, 4, 64);
  m.params().init(*env, 1);
  TrainArgs a = sft_args(sft_corpus("splits", false), 4);
  a.split = "80,10,10";
  a.eval_interval = 2;
  a.eval_iters = 1;
  const TrainResult r = train(m, a, world);
  ASSERT_EQ(r.valid_losses.size(), 2u);
  ASSERT_TRUE(std::isfinite(r.end_valid_loss) && std::isfinite(r.test_loss));
  const Datasets d = open_datasets(a, false, false);
  ASSERT_TRUE(d.has_valid() && d.has_test());
  MicroBatch batch(4, 63);
  Validator valid(m, d.valid_src, world, 2, 2 * 8, nullptr, true);
  EXPECT_EQ(valid.evaluate(batch), r.end_valid_loss);
  Validator test_split(m, d.test_src, world, 2, 0, nullptr, true);
  EXPECT_EQ(test_split.evaluate(batch), r.test_loss);
}

}  // namespace
}  // namespace cs
