// The tokenizer against SentencePiece's own command-line encoder (Debian's `spm_encode`) on a
// varied corpus (ASCII, Chinese, emoji, tabs, runs of spaces, an empty string), with the real
// Baichuan-13B tokenizer from ../shared when present (skipped with a message otherwise); and
// clear errors for bad paths.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "data/tokenizer.h"

namespace cs {
namespace {
namespace fs = std::filesystem;

const std::string kBaichuan = std::string(CS_SOURCE_DIR) + "/../shared/reference/baichuan-13b-base";

const std::vector<std::string> kCorpus = {
    "Hello, world! The quick brown fox jumps over the lazy dog.",
    "百川大模型是一个开源的中英双语大语言模型。",
    "emoji 😀🚀 and mixed 中文 text",
    "tabs\there\tand   runs     of spaces",
    "def f(x):    return x * 2  # code",  // one line: spm_encode encodes line by line
    "",
};

std::vector<int32_t> spm_encode(const std::string& model, const std::string& text) {
  const std::string in = ::testing::TempDir() + "/cs_spm_in_" + std::to_string(getpid());
  std::ofstream(in) << text << "\n";
  const std::string cmd = "spm_encode --model='" + model + "' --output_format=id < '" + in + "'";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  std::istringstream ss(out);
  std::vector<int32_t> ids;
  for (int32_t x; ss >> x;) ids.push_back(x);
  return ids;
}

TEST(Tokenizer, BaichuanIdsEqualSentencePiecesOwn) {
  if (!fs::exists(kBaichuan + "/tokenizer.model")) GTEST_SKIP() << "no ../shared/reference: skipped";
  if (std::system("command -v spm_encode > /dev/null 2>&1") != 0) GTEST_SKIP() << "spm_encode missing";
  Tokenizer tok(kBaichuan);  // the Hugging Face directory: add_bos_token / add_eos_token false
  EXPECT_EQ(tok.vocab_size(), 64000);
  EXPECT_FALSE(tok.add_bos());
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  for (const std::string& text : kCorpus) {
    const auto ours = tok.encode(text);
    EXPECT_EQ(ours, spm_encode(kBaichuan + "/tokenizer.model", text)) << text;
    if (!text.empty()) EXPECT_EQ(tok.decode(ours), text) << "round trip";
  }
}

TEST(Tokenizer, BadPathsAreClearErrors) {
  try {
    Tokenizer t("/nonexistent/tokenizer");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/tokenizer"), std::string::npos);
  }
  const std::string bogus = ::testing::TempDir() + "/cs_not_a_model_" + std::to_string(getpid());
  std::ofstream(bogus) << "not a sentencepiece model";
  EXPECT_THROW(Tokenizer t(bogus), Error);
  const std::string dir = ::testing::TempDir() + "/cs_tok_dir_" + std::to_string(getpid());
  fs::create_directories(dir);
  try {
    Tokenizer t(dir);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no tokenizer.model"), std::string::npos);
  }
}

}  // namespace
}  // namespace cs
