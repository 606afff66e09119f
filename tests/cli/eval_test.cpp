// chuanspeed eval against float64 per-document losses from the PyTorch reference
// (tests/fixtures/eval/expected.json): RoPE and ALiBi; F32, BF16 and F16 weights; one file and
// sharded. Documents shorter and longer than N + 1, batched 3 at a time (padding exercised).
#include <gtest/gtest.h>

#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/run_util.h"
#include "data/indexed_dataset.h"
#include "tolerances.h"
#include "train/evaluate.h"
#include "train/hf_model.h"
#include "device_env.h"

namespace cs {
namespace {

const std::string kEval = std::string(CS_SOURCE_DIR) + "/tests/fixtures/eval/";

nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  EXPECT_TRUE(f.good()) << path;
  return nlohmann::json::parse(f);
}

std::string model_dir(const std::string& variant) {
  if (variant == "rope" || variant == "alibi")
    return std::string(CS_SOURCE_DIR) + "/tests/fixtures/model/" + variant;
  return kEval + variant;
}

// Writes the fixture documents as a Megatron dataset; returns its prefix.
std::string write_docs(const nlohmann::json& docs) {
  const std::string prefix = ::testing::TempDir() + "/cs_eval_docs_" + std::to_string(getpid());
  IndexedDatasetWriter w(prefix, best_dtype(101));
  for (const auto& d : docs) {
    std::vector<int32_t> ids = d.get<std::vector<int32_t>>();
    w.add_item(ids.data(), int64_t(ids.size()));
    w.end_document();
  }
  w.finalize();
  return prefix;
}

class Eval : public ::testing::TestWithParam<std::string> {};

TEST_P(Eval, PerDocumentLossesMatchFloat64Reference) {
  const auto docs = read_json(kEval + "docs.json");
  const auto expected = read_json(kEval + "expected.json").at(GetParam());
  const int64_t n = docs.at("seq_length").get<int64_t>();
  IndexedDataset data(write_docs(docs.at("docs")));
  SingleGroup tp;
  auto model = load_hf_model(model_dir(GetParam()), test::cpu_ctx(), tp, 3, n);
  std::vector<DocScore> got;
  EvalSummary s = evaluate_documents(*model, data, n, 3, [&](const DocScore& d) { got.push_back(d); });
  ASSERT_EQ(got.size(), expected.size());
  int64_t tokens = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].doc, expected[i].at("doc").get<int64_t>());
    EXPECT_EQ(got[i].tokens, expected[i].at("tokens").get<int64_t>()) << "doc " << i;
    EXPECT_NEAR(got[i].loss, expected[i].at("loss").get<double>(), tol::kModelAtol) << "doc " << i;
    tokens += got[i].tokens;
  }
  EXPECT_EQ(s.tokens, tokens);
}

INSTANTIATE_TEST_SUITE_P(Variants, Eval,
                         ::testing::Values("rope", "alibi", "rope-f32-sharded", "alibi-bf16", "rope-f16"));

TEST(EvalCommand, WritesOneJsonLinePerDocumentAndASummary) {
  const auto docs = read_json(kEval + "docs.json");
  const std::string prefix = write_docs(docs.at("docs"));
  const std::string out = ::testing::TempDir() + "/cs_eval_out_" + std::to_string(getpid()) + ".jsonl";
  auto r = test::run_binary("eval --load " + kEval + "alibi-bf16 --data-path " + prefix +
                            " --seq-length " + std::to_string(docs.at("seq_length").get<int>()) +
                            " --micro-batch-size 2 --output " + out);
  ASSERT_EQ(r.status, 0) << r.err;
  const auto expected = read_json(kEval + "expected.json").at("alibi-bf16");
  std::ifstream f(out);
  std::string line;
  size_t i = 0;
  double nll = 0;
  int64_t tokens = 0;
  for (; std::getline(f, line); ++i) {
    auto j = nlohmann::json::parse(line);
    ASSERT_LT(i, expected.size());
    EXPECT_EQ(j.at("doc").get<int64_t>(), int64_t(i));
    EXPECT_NEAR(j.at("loss").get<double>(), expected[i].at("loss").get<double>(), tol::kModelAtol);
    nll += j.at("loss").get<double>() * j.at("tokens").get<double>();
    tokens += j.at("tokens").get<int64_t>();
  }
  EXPECT_EQ(i, expected.size());
  std::ostringstream want;
  want << "eval summary: documents " << expected.size() << " | tokens " << tokens << " | mean loss ";
  EXPECT_NE(r.out.find(want.str()), std::string::npos) << r.out;
  const double mean = std::stod(r.out.substr(r.out.find("mean loss ") + 10));
  EXPECT_NEAR(mean, nll / double(tokens), 1e-5);
}

}  // namespace
}  // namespace cs
