// chuanspeed preprocess as a user runs it: progress lines every --log-interval documents and a
// summary, Megatron's output names, one clear line and the right exit status for bad flags and bad
// records. (generate's command-line tests: generate_cli_test.cpp.)
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

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
                            "--tokenizer-not-use-fast --dataset-impl mmap --partitions 2 --keep-sequential-samples "
                            "--lang english");
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

TEST(PreprocessCli, InstructionDatasetWritesTheLossMaskBesideTheText) {
  const std::string d = tmp("sft");
  const auto r = run_binary("preprocess --input " + kSrc + "/assets/demo/conversations_demo.json --output-prefix " + d +
                            "/sft --tokenizer-name-or-path " + kTok + " --handler-name conversation "
                            "--is-instruction-dataset --prompt-type vicuna --log-interval 0");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("wrote " + d + "/sft_loss_mask_document.bin and " + d + "/sft_loss_mask_document.idx"),
            std::string::npos) << r.out;
  for (const char* f : {"/sft_text_document.bin", "/sft_text_document.idx", "/sft_loss_mask_document.bin",
                        "/sft_loss_mask_document.idx"})
    EXPECT_TRUE(std::filesystem::exists(d + f)) << f;
  // One byte a token: the mask's .bin is as many bytes as the (uint16) text's has tokens.
  EXPECT_EQ(2 * std::filesystem::file_size(d + "/sft_loss_mask_document.bin"),
            std::filesystem::file_size(d + "/sft_text_document.bin"));
}

TEST(PreprocessCli, BadFlagsAndRecordsAreOneLineWithTheRightStatus) {
  const std::string d = tmp("bad");
  std::ofstream(d + "/in.jsonl") << "{\"text\": \"a\"}\n{\"text\": \"b\"\n";
  const std::string base = "preprocess --output-prefix " + d + "/o --tokenizer-name-or-path " + kTok;
  struct Case {
    std::string args, needle;
    int status;
  } cases[] = {
      {base + " --input " + d + "/none.jsonl", "--input " + d + "/none.jsonl: no such file or directory", 1},
      {base + " --input " + d + "/in.jsonl --tokenizer-type GPT2BPETokenizer", "--tokenizer-type GPT2BPETokenizer", 2},
      {base + " --input " + d + "/in.jsonl --split-sentences", "--split-sentences: not supported", 2},
      {base + " --input " + d + "/in.jsonl --partitions 4", "--partitions 4: Megatron's deals the lines round-robin", 2},
      {base + " --input " + d + "/in.jsonl --vocab-file v.json", "--vocab-file: GPT-2 BPE vocabularies are not supported", 2},
      {base + " --input " + d + "/in.jsonl --merge-file m.txt", "--merge-file: GPT-2 BPE vocabularies are not supported", 2},
      {base + " --input " + d + "/in.jsonl --workers 0", "--workers 0: expected 1 to 1024", 2},
      {base + " --input " + d + "/in.jsonl --workers 100000", "--workers 100000: expected 1 to 1024", 2},
      {base + " --input " + d + "/in.jsonl --handler-name sharegpt", "--handler-name sharegpt", 2},
      {base + " --input " + d + "/in.jsonl --is-instruction-dataset",
       "--is-instruction-dataset: --handler-name plain has no prompt and response", 2},
      {base + " --input " + d + "/in.jsonl --handler-name alpaca --prompt-type baichuan",
       "--prompt-type baichuan: the tokenizer", 2},
      {base + " --input " + d + "/in.jsonl --handler-name alpaca --prompt-type chatml",
       "--prompt-type chatml: expected alpaca, vicuna or baichuan", 2},
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

}  // namespace
}  // namespace cs::test
