// The tokenizer against SentencePiece's own command-line encoder (Debian's `spm_encode`) on a
// varied corpus (tests/fixtures/tokenizer/varied.json: ASCII, digits, Chinese, emoji, tabs, runs of
// spaces, NFKC-folded characters, empty and multi-line texts), for the committed demo tokenizer
// (assets/demo/tokenizer, never skipped: against the committed spm_encode ids, and live when
// spm_encode is installed) and for the real Baichuan-13B tokenizer from ../shared (skipped without
// it); the demo tokenizer's settings; clear errors for bad paths.
//
// spm_encode is line-based: a text with newlines is put together from its lines as
// tools/demo/make_tokenizer_fixture.py explains (ids(L0) + per later line [id("\n")] +
// ids("\t" Li)[2:]), and the library opened directly (what Python's sentencepiece wraps) must agree.
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "data/tokenizer.h"

namespace cs {
namespace {
namespace fs = std::filesystem;

const std::string kBaichuan = std::string(CS_SOURCE_DIR) + "/../shared/reference/baichuan-13b-base";
const std::string kDemo = std::string(CS_SOURCE_DIR) + "/assets/demo/tokenizer";
const std::string kFixture = std::string(CS_SOURCE_DIR) + "/tests/fixtures/tokenizer/varied.json";

const nlohmann::json& fixture() {
  static const nlohmann::json j = [] {
    std::ifstream f(kFixture);
    EXPECT_TRUE(f.good()) << kFixture;
    return nlohmann::json::parse(f);
  }();
  return j;
}

bool have_spm_encode() { return std::system("command -v spm_encode > /dev/null 2>&1") == 0; }

// One line through `spm_encode --output_format=id`.
std::vector<int32_t> spm_encode_line(const std::string& model, const std::string& line) {
  const std::string in = ::testing::TempDir() + "/cs_spm_in_" + std::to_string(getpid());
  std::ofstream(in) << line << "\n";
  const std::string cmd = "spm_encode --model='" + model + "' --output_format=id < '" + in + "'";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  EXPECT_EQ(pclose(p), 0) << cmd;
  std::istringstream ss(out);
  std::vector<int32_t> ids;
  for (int32_t x; ss >> x;) ids.push_back(x);
  return ids;
}

// Any text through spm_encode, newlines included (see the file comment).
std::vector<int32_t> spm_encode(const std::string& model, const std::string& text, int32_t newline_id) {
  std::vector<std::string> lines(1);
  for (char c : text) {
    if (c == '\n') lines.emplace_back();
    else lines.back() += c;
  }
  if (lines.size() == 1) return spm_encode_line(model, text);
  std::vector<int32_t> ids = spm_encode_line(model, lines[0].empty() ? "\t" : lines[0]);
  if (lines[0].empty()) ids.resize(1);  // only the dummy prefix "▁"
  for (size_t i = 1; i < lines.size(); ++i) {
    const auto tail = spm_encode_line(model, "\t" + lines[i]);
    EXPECT_GE(tail.size(), 2u);
    ids.push_back(newline_id);
    ids.insert(ids.end(), tail.begin() + 2, tail.end());
  }
  return ids;
}

// Every fixture text: ours == the committed spm_encode ids == the library opened directly, and the
// ids decode to the text (or to its NFKC-folded form, which the fixture records); live against
// spm_encode too when `live`.
void check_corpus(const Tokenizer& tok, const std::string& name, bool live) {
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load(tok.model_path()).ok());
  const int32_t newline_id = sp.PieceToId("\n");
  ASSERT_GT(newline_id, 0) << "\"\\n\" is a piece of its own";
  size_t checked = 0;
  for (const auto& e : fixture().at("texts")) {
    const std::string text = e.at("text");
    const auto expected = e.at(name).get<std::vector<int32_t>>();  // throws if the fixture lacks it
    const auto ours = tok.encode(text);
    EXPECT_EQ(ours, expected) << name << ": " << text;
    std::vector<int> lib;
    sp.Encode(text, &lib);
    EXPECT_EQ(ours, std::vector<int32_t>(lib.begin(), lib.end())) << name << " library: " << text;
    if (live) {
      EXPECT_EQ(ours, spm_encode(tok.model_path(), text, newline_id)) << name << " live: " << text;
    }
    EXPECT_EQ(tok.decode(ours), e.value(name + "_decoded", text)) << name << " round trip: " << text;
    ++checked;
  }
  EXPECT_GE(checked, 20u);
}

TEST(Tokenizer, DemoIdsEqualSpmEncodesOnVariedCorpus) {
  Tokenizer tok(kDemo);
  EXPECT_EQ(tok.vocab_size(), 1024);
  EXPECT_FALSE(tok.add_bos());
  EXPECT_FALSE(tok.add_eos());
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.pad_id(), 0) << "no pad piece: pad is <unk>, as in Baichuan-13B";
  check_corpus(tok, "demo", false);
}

TEST(Tokenizer, DemoIdsEqualLiveSpmEncode) {
  if (!have_spm_encode()) GTEST_SKIP() << "spm_encode missing: compared with the committed ids only";
  check_corpus(Tokenizer(kDemo), "demo", true);
}

// The settings the demo relies on: digits one piece each, "\n" and "\t" kept, the template's words
// whole, other scripts through byte pieces, Baichuan's special ids.
TEST(Tokenizer, DemoTokenizerSettings) {
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load(kDemo + "/tokenizer.model").ok());
  EXPECT_EQ(sp.unk_id(), 0);
  EXPECT_EQ(sp.bos_id(), 1);
  EXPECT_EQ(sp.eos_id(), 2);
  EXPECT_EQ(sp.pad_id(), -1);
  for (const char* piece : {"\n", "\t", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "###", "▁Below",
                            "▁instruction", "▁Instruction", "▁Input", "▁Response", "▁appropriately"})
    EXPECT_NE(sp.PieceToId(piece), sp.unk_id()) << piece;
  std::vector<std::string> pieces;
  sp.Encode("What is 345 + 1027?", &pieces);
  EXPECT_EQ(pieces, (std::vector<std::string>{"▁What", "▁is", "▁", "3", "4", "5", "▁+", "▁", "1", "0", "2", "7", "?"}));
  sp.Encode("### Response:\n154", &pieces);
  EXPECT_EQ(pieces, (std::vector<std::string>{"▁###", "▁Response", ":", "\n", "1", "5", "4"}));
  sp.Encode("中", &pieces);  // not in the corpus: UTF-8 bytes, not <unk>
  EXPECT_EQ(pieces, (std::vector<std::string>{"▁", "<0xE4>", "<0xB8>", "<0xAD>"}));
}

TEST(Tokenizer, BaichuanIdsEqualSpmEncodesOnVariedCorpus) {
  if (!fs::exists(kBaichuan + "/tokenizer.model")) GTEST_SKIP() << "no ../shared/reference: skipped";
  Tokenizer tok(kBaichuan);  // the Hugging Face directory: add_bos_token / add_eos_token false
  EXPECT_EQ(tok.vocab_size(), 64000);
  EXPECT_FALSE(tok.add_bos());
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  check_corpus(tok, "baichuan", have_spm_encode());
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
