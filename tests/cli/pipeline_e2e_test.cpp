// The pipeline end to end as DESIGN.md §7 lists it, on the demo assets: preprocess (Alpaca JSON,
// demo tokenizer) -> train with validation -> stop -> resume (losses and grad norms bit-identical
// to an uninterrupted run) -> convert to a bf16 Hugging Face dir -> eval (close to the fp32 model).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "run_util.h"

namespace cs::test {
namespace {

const std::string kSrc = CS_SOURCE_DIR;

std::string tmp(const std::string& name) {
  const auto d = std::filesystem::path(testing::TempDir()) / ("cs_e2e_" + name);
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d.string();
}

// iteration -> (lm loss, grad norm) from metrics.jsonl; validation lines separately.
struct Curve {
  std::map<int64_t, std::pair<double, double>> train;
  std::map<int64_t, double> valid;
};
Curve read_metrics(const std::string& path) {
  Curve c;
  std::ifstream f(path);
  for (std::string line; std::getline(f, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("valid_lm_loss"))
      c.valid[j["iteration"]] = j["valid_lm_loss"];
    else if (j.contains("lm_loss"))  // fp32: every record has both
      c.train[j["iteration"]] = {j["lm_loss"].get<double>(), j.at("grad_norm").get<double>()};
  }
  return c;
}

double eval_mean_loss(const std::string& out) {
  const size_t at = out.find("mean loss ");
  return at == std::string::npos ? -1 : std::stod(out.substr(at + 10));
}

TEST(Pipeline, PreprocessTrainStopResumeConvertEval) {
  const std::string d = tmp("run");
  const std::string tok = kSrc + "/assets/demo/tokenizer";
  auto r = run_binary("preprocess --input " + kSrc + "/assets/demo/alpaca_demo.json --output-prefix " + d +
                      "/alpaca --tokenizer-name-or-path " + tok + " --handler-name alpaca --append-eod --workers 2");
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string train = "train --model tiny --tokenizer-type Llama2Tokenizer --tokenizer-model " + tok +
                            "/tokenizer.model --seq-length 32 --micro-batch-size 2 --global-batch-size 4 "
                            "--train-iters 24 --lr 2e-3 --lr-warmup-iters 4 --lr-decay-style cosine "
                            "--log-interval 1 --split 98,2,0 --eval-interval 8 --eval-iters 2 --data-path " +
                            d + "/alpaca_text_document";
  r = run_binary(train + " --save " + d + "/straight");
  ASSERT_EQ(r.status, 0) << r.err;
  r = run_binary(train + " --save " + d + "/split --exit-interval 12");
  ASSERT_EQ(r.status, 0) << r.err;
  r = run_binary(train + " --save " + d + "/split --load " + d + "/split");
  ASSERT_EQ(r.status, 0) << r.err;
  const Curve a = read_metrics(d + "/straight/metrics.jsonl"), b = read_metrics(d + "/split/metrics.jsonl");
  ASSERT_EQ(a.train.size(), 24u);
  EXPECT_EQ(a.train, b.train);  // bit-identical losses and grad norms, before and after the stop
  EXPECT_EQ(a.valid, b.valid);
  ASSERT_EQ(a.valid.size(), 3u);
  EXPECT_LT(a.train.at(24).first, a.train.at(1).first - 1.0);  // it learns

  r = run_binary("convert --input " + d + "/split --output " + d + "/hf --to hf --dtype bf16 --tokenizer-name-or-path " + tok);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(std::filesystem::exists(d + "/hf/tokenizer.model"));
  const std::string eval = " --data-path " + d + "/alpaca_text_document --seq-length 64";
  const auto fp32 = run_binary("eval --load " + d + "/split" + eval);
  const auto bf16 = run_binary("eval --load " + d + "/hf" + eval);
  ASSERT_EQ(fp32.status, 0) << fp32.err;
  ASSERT_EQ(bf16.status, 0) << bf16.err;
  const double l32 = eval_mean_loss(fp32.out + fp32.err), l16 = eval_mean_loss(bf16.out + bf16.err);
  ASSERT_GT(l32, 0);
  EXPECT_NEAR(l16, l32, 0.02 * l32);  // bf16 weights: close, not equal
  EXPECT_NE(l16, l32);
}

}  // namespace
}  // namespace cs::test
