// Megatron's end-of-document flags on pretraining data, through the binary: the demo corpus
// preprocessed with --append-eod (each document ends with the tokenizer's EOS), trained with
// --reset-attention-mask, --reset-position-ids and --eod-mask-loss, each alone and together: every
// run names the id it uses and trains, and each flag changes the first loss (attention or
// positions across a document boundary, or the targets counted), where a run without them does
// not change; NullTokenizer's id is the vocabulary size it was given.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>
#include <nlohmann/json.hpp>

#include "run_util.h"

namespace cs::test {
namespace {

const std::string kSrc = CS_SOURCE_DIR;

// The demo corpus preprocessed with --append-eod into D/alpaca_text_document (each document ends
// with the tokenizer's EOS).
void preprocess_demo(const std::string& d) {
  const auto r = run_binary("preprocess --input " + kSrc + "/assets/demo/alpaca_demo.json --output-prefix " + d +
                            "/alpaca --tokenizer-name-or-path " + kSrc + "/assets/demo/tokenizer --handler-name alpaca "
                            "--append-eod --workers 1");
  ASSERT_EQ(r.status, 0) << r.err;
}

double first_loss(const std::string& metrics) {
  std::ifstream f(metrics);
  std::string line;
  std::getline(f, line);
  return nlohmann::json::parse(line).at("lm_loss").get<double>();
}

TEST(EodFlags, EachChangesTrainingOnPretrainingData) {
  const auto d = (std::filesystem::path(testing::TempDir()) / ("cs_eod_flags_" + std::to_string(getpid()))).string();
  std::filesystem::remove_all(d);
  const std::string tok = kSrc + "/assets/demo/tokenizer";
  preprocess_demo(d);
  if (HasFatalFailure()) return;
  const std::string train = "train --model tiny --tokenizer-name-or-path " + tok + " --seq-length 64 "
                            "--micro-batch-size 2 --global-batch-size 4 --train-iters 2 --lr 1e-3 --log-interval 1 "
                            "--split 100,0,0 --data-path " + d + "/alpaca_text_document";
  auto r = run_binary(train + " --save " + d + "/plain");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err.find("end-of-document id"), std::string::npos) << r.err;
  const double plain = first_loss(d + "/plain/metrics.jsonl");
  r = run_binary(train + " --save " + d + "/again");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(first_loss(d + "/again/metrics.jsonl"), plain);
  const std::vector<std::pair<std::string, std::string>> runs = {
      {"--reset-attention-mask", "attention stops at each"},
      {"--reset-position-ids", "positions restart after each"},
      {"--eod-mask-loss", "the target after each is left out of the loss"},
      {"--reset-attention-mask --reset-position-ids --eod-mask-loss",
       "attention stops at each, positions restart after each, the target after each is left out of the loss"}};
  for (size_t i = 0; i < runs.size(); ++i) {
    const std::string save = d + "/flags" + std::to_string(i);
    r = run_binary(train + " " + runs[i].first + " --save " + save);
    ASSERT_EQ(r.status, 0) << runs[i].first << ": " << r.err;
    EXPECT_NE(r.err.find("[train] end-of-document id 2, " + runs[i].second), std::string::npos) << r.err;
    EXPECT_GT(std::fabs(first_loss(save + "/metrics.jsonl") - plain), 1e-6 * plain) << runs[i].first;
  }
  // NullTokenizer: ids 0 .. V-1 and the end of document V.
  r = run_binary("synth-data --output-prefix " + d + "/synth --vocab-size 100 --num-docs 20");
  ASSERT_EQ(r.status, 0) << r.err;
  r = run_binary("train --model tiny --tokenizer-type NullTokenizer --vocab-size 100 --seq-length 16 "
                 "--micro-batch-size 2 --train-iters 1 --lr 1e-3 --split 100,0,0 --eod-mask-loss --data-path " + d +
                 "/synth");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("[train] end-of-document id 100, the target after"), std::string::npos) << r.err;
}

// Megatron's --calculate-per-token-loss: the global batch's loss is its token losses over its
// counted targets. With --eod-mask-loss the micro-batches count different targets, so it differs
// from the mean of the micro-batches' means, and equals (loss and gradient: the next
// iteration's loss too) the global batch taken as one micro-batch, whose mean is the same thing.
TEST(EodFlags, PerTokenLossIsTheGlobalBatchsTokenMean) {
  const auto d = (std::filesystem::path(testing::TempDir()) / ("cs_per_token_" + std::to_string(getpid()))).string();
  std::filesystem::remove_all(d);
  const std::string tok = kSrc + "/assets/demo/tokenizer";
  preprocess_demo(d);
  if (HasFatalFailure()) return;
  const std::string train = "train --model tiny --tokenizer-name-or-path " + tok + " --seq-length 64 "
                            "--global-batch-size 4 --train-iters 2 --lr 1e-3 --log-interval 1 --eod-mask-loss "
                            "--split 100,0,0 --data-path " + d + "/alpaca_text_document";
  auto losses = [&](const std::string& name, const std::string& extra) {
    const auto run = run_binary(train + " " + extra + " --save " + d + "/" + name);
    EXPECT_EQ(run.status, 0) << extra << ": " << run.err;
    std::ifstream f(d + "/" + name + "/metrics.jsonl");
    std::vector<double> out;
    for (std::string line; std::getline(f, line);) {
      const auto j = nlohmann::json::parse(line);
      if (j.contains("lm_loss")) out.push_back(j["lm_loss"].get<double>());
    }
    EXPECT_EQ(out.size(), 2u) << name;
    out.resize(2);
    return out;
  };
  // Four micro-batches of one sample (whose end-of-document counts differ in this corpus).
  const std::vector<double> means = losses("means", "--micro-batch-size 1");
  const std::vector<double> per_token = losses("per_token", "--micro-batch-size 1 --calculate-per-token-loss");
  const std::vector<double> whole = losses("whole", "--micro-batch-size 4");
  EXPECT_GT(std::fabs(per_token[0] - means[0]), 1e-5 * means[0]);
  for (size_t i = 0; i < 2; ++i) EXPECT_NEAR(per_token[i], whole[i], 1e-6 * whole[i]) << "iteration " << i + 1;
  std::filesystem::remove_all(d);
}

}  // namespace
}  // namespace cs
