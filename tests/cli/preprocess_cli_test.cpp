// chuanspeed preprocess and generate --prompt-file as a user runs them: progress lines every
// --log-interval documents and a summary, Megatron's output names, one clear line and the right
// exit status for bad flags and bad records; JSON prompt files scored by exact match.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "data/tokenizer.h"
#include "run_util.h"

namespace cs::test {
namespace {

const std::string kSrc = CS_SOURCE_DIR;
const std::string kTok = kSrc + "/assets/demo/tokenizer";

std::string tmp(const std::string& name) {
  const auto d = std::filesystem::path(testing::TempDir()) / ("cs_pcli_" + name);
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d.string();
}

TEST(PreprocessCli, ProgressSummaryAndMegatronNames) {
  const std::string d = tmp("ok");
  std::ofstream f(d + "/in.jsonl");
  for (int i = 0; i < 250; ++i) f << "{\"text\": \"document " << i << "\"}\n";
  f.close();
  const auto r = run_binary("preprocess --input " + d + "/in.jsonl --output-prefix " + d + "/corpus --tokenizer-name-or-path " +
                            kTok + " --tokenizer-type PretrainedFromHF --workers 2 --log-interval 100 --append-eod "
                            "--tokenizer-not-use-fast --dataset-impl mmap");
  ASSERT_EQ(r.status, 0) << r.err;
  // Batches of 64 records: progress after 128 and 256 -> at most 3 lines, at least 2.
  EXPECT_GE(count_matching_lines(r.err, "[preprocess] processed "), 2) << r.err;
  EXPECT_NE(r.err.find("docs/s"), std::string::npos);
  EXPECT_NE(r.out.find("preprocessed 250 documents"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(2 workers)"), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(d + "/corpus_text_document.bin"));
  EXPECT_TRUE(std::filesystem::exists(d + "/corpus_text_document.idx"));
  // The dataset trains: eval reads it with a freshly initialised model of the tokenizer's vocab.
  ASSERT_EQ(run_binary("init --model tiny --vocab-size 1024 --save " + d + "/init").status, 0);
  const auto e = run_binary("eval --load " + d + "/init --data-path " + d + "/corpus_text_document --seq-length 16");
  EXPECT_EQ(e.status, 0) << e.err;
}

TEST(PreprocessCli, BadFlagsAndRecordsAreOneLineWithTheRightStatus) {
  const std::string d = tmp("bad");
  std::ofstream(d + "/in.jsonl") << "{\"text\": \"a\"}\n{\"text\": \"b\"\n";
  const std::string base = "preprocess --output-prefix " + d + "/o --tokenizer-name-or-path " + kTok;
  struct Case {
    std::string args, needle;
    int status;
  } cases[] = {
      {base + " --input " + d + "/none.jsonl", "--input " + d + "/none.jsonl: no such file or directory", 2},
      {base + " --input " + d + "/in.jsonl --tokenizer-type GPT2BPETokenizer", "--tokenizer-type GPT2BPETokenizer", 2},
      {base + " --input " + d + "/in.jsonl --split-sentences", "--split-sentences: not supported", 2},
      {base + " --input " + d + "/in.jsonl --workers 0", "--workers 0: expected 1 to 1024", 2},
      {base + " --input " + d + "/in.jsonl --workers 100000", "--workers 100000: expected 1 to 1024", 2},
      {base + " --input " + d + "/in.jsonl --handler-name sharegpt", "--handler-name sharegpt", 2},
      {base + " --input " + d + "/in.jsonl", "in.jsonl:2: not valid JSON", 1},
      {"preprocess --input " + d + "/in.jsonl --output-prefix " + d + "/o --tokenizer-name-or-path " + d + "/nothing",
       "no such file or directory", 1},
  };
  for (const auto& c : cases) {
    const auto r = run_binary(c.args);
    EXPECT_EQ(r.status, c.status) << c.args << "\n" << r.err;
    EXPECT_EQ(count_matching_lines(r.err, "error"), 1) << r.err;
    EXPECT_NE(r.err.find(c.needle), std::string::npos) << r.err;
  }
  for (const auto& e : std::filesystem::directory_iterator(d))
    EXPECT_EQ(e.path().filename().string().rfind("o_", 0), std::string::npos) << "left behind: " << e.path();
}

// Ctrl-C (SIGINT) stops a running preprocess: exit 130, one line, no .tmp and no outputs left.
TEST(PreprocessCli, InterruptedRunLeavesNothing) {
  const std::string d = tmp("sigint");
  {
    std::ofstream f(d + "/in.jsonl");  // ~60 MB: seconds of work, so the signal lands mid-run
    for (int64_t i = 0; i < 300000; ++i)
      f << "{\"text\": \"document " << i << ": the quick brown fox jumps over the lazy dog " << i * 7919
        << " times, and then it rests for a while before the next record comes along " << i % 977 << "\"}\n";
  }
  const std::string script = std::string(CS_BINARY) + " preprocess --input " + d + "/in.jsonl --output-prefix " + d +
                             "/o --tokenizer-name-or-path " + kTok + " --log-interval 0 2>" + d +
                             "/err & pid=$!; i=0; while [ ! -e " + d + "/o_text_document.bin.tmp ] && [ $i -lt 2000 ]; "
                             "do sleep 0.005; i=$((i+1)); done; kill -INT $pid; wait $pid; echo $?";
  FILE* p = popen(script.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[64] = {};
  const size_t n = fread(buf, 1, sizeof(buf) - 1, p);
  pclose(p);
  EXPECT_EQ(std::string(buf, n), "130\n");
  std::ifstream ef(d + "/err");
  const std::string err((std::istreambuf_iterator<char>(ef)), {});
  EXPECT_EQ(count_matching_lines(err, "error"), 1) << err;
  EXPECT_NE(err.find("[preprocess] interrupted at " + d + "/in.jsonl:"), std::string::npos) << err;
  for (const auto& e : std::filesystem::directory_iterator(d))
    EXPECT_EQ(e.path().filename().string().rfind("o_", 0), std::string::npos) << "left behind: " << e.path();
  std::filesystem::remove_all(d);
}

TEST(Flags, NonPositiveNumbersAreOneShortLine) {
  for (const std::string args : {"train --micro-batch-size 0 --data-path x", "generate --load x --max-new-tokens -3",
                                 "eval --load x --data-path y --seq-length abc"}) {
    const auto r = run_binary(args);
    EXPECT_EQ(r.status, 2) << args;
    EXPECT_EQ(count_matching_lines(r.err, "error"), 1) << r.err;
    EXPECT_NE(r.err.find("expected a number greater than 0"), std::string::npos) << r.err;
    EXPECT_LT(r.err.size(), 200u) << r.err;  // CLI11's PositiveNumber printed DBL_MAX in full
  }
}

TEST(GenerateCli, JsonPromptFileIsScoredByExactMatch) {
  const std::string d = tmp("gen");
  ASSERT_EQ(run_binary("init --model tiny --vocab-size 1024 --seed 3 --save " + d + "/m").status, 0);
  std::ofstream(d + "/q.jsonl") << R"({"instruction": "What is 2 + 2?", "input": ""})" "\n";
  const std::string gen = "generate --load " + d + "/m --tokenizer-name-or-path " + kTok + " --max-new-tokens 3 --prompt-file ";
  auto r = run_binary(gen + d + "/q.jsonl");
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string prefix = "What is 2 + 2? -> ";
  ASSERT_EQ(r.out.rfind(prefix, 0), 0u) << r.out;
  std::string answer = r.out.substr(prefix.size());
  answer = answer.substr(0, answer.find('\n'));
  EXPECT_EQ(r.out.find("exact match"), std::string::npos);  // nothing to score against
  // The greedy answer scored against itself is right, against anything else wrong.
  nlohmann::json right = {{"instruction", "What is 2 + 2?"}, {"input", ""}, {"output", answer}, {"task", "add"}};
  nlohmann::json wrong = {{"instruction", "What is 2 + 2?"}, {"output", answer + "x"}, {"task", "add"}};
  std::ofstream(d + "/s.jsonl") << right.dump() << "\n" << wrong.dump() << "\n";
  r = run_binary(gen + d + "/s.jsonl");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("exact match: 1 / 2 = 50.0%"), std::string::npos) << r.out;
  EXPECT_EQ(count_matching_lines(r.out, "[right]"), 1) << r.out;
  std::ofstream(d + "/bad.jsonl") << "{\"instruction\": 3}\n";
  r = run_binary(gen + d + "/bad.jsonl");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("bad.jsonl:1: field 'instruction' is not a string"), std::string::npos) << r.err;
}

TEST(GenerateCli, PromptTextWithTheRealBaichuanTokenizerEqualsItsIds) {
  const std::string baichuan = kSrc + "/../shared/reference/baichuan-13b-base";
  if (!std::filesystem::exists(baichuan + "/tokenizer.model"))
    GTEST_SKIP() << "../shared/reference/baichuan-13b-base not present";
  const std::string d = tmp("baichuan");
  ASSERT_EQ(run_binary("init --model tiny --vocab-size 64000 --position-embedding-type alibi --seed 5 --save " + d + "/m").status, 0);
  const std::string prompt = "百川大模型 is a family of LLMs:";
  const Tokenizer tok(baichuan);
  std::string ids;
  for (int32_t id : tok.encode(prompt)) ids += (ids.empty() ? "" : ",") + std::to_string(id);
  const std::string gen = "generate --load " + d + "/m --max-new-tokens 6 ";
  const auto by_text = run_binary(gen + "--tokenizer-name-or-path " + baichuan + " --prompt '" + prompt + "'");
  const auto by_ids = run_binary(gen + "--prompt-ids " + ids);
  ASSERT_EQ(by_text.status, 0) << by_text.err;
  ASSERT_EQ(by_ids.status, 0) << by_ids.err;
  // The same greedy continuation: the text form prints the prompt and the decoded new tokens.
  std::vector<int32_t> cont;
  for (size_t at = 0; at < by_ids.out.size();) {
    size_t end = by_ids.out.find_first_of(",\n", at);
    if (end == std::string::npos) end = by_ids.out.size();
    if (end > at) cont.push_back(std::stoi(by_ids.out.substr(at, end - at)));
    at = end + 1;
  }
  ASSERT_EQ(cont.size(), 6u) << by_ids.out;
  EXPECT_EQ(by_text.out, prompt + tok.decode(cont) + "\n");
}

}  // namespace
}  // namespace cs::test
