// The word cache gives SentencePiece's ids exactly: every text of the demo corpus, the varied
// tokenizer corpus and random ASCII/Unicode strings with every spacing pattern, through the same
// encoder (so the cache is exercised with hits), for the demo tokenizer and (with ../shared)
// Baichuan-13B's.
#include "data/word_cache.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "data/parquet/parquet_reader.h"
#include "data/tokenizer.h"

namespace cs {
namespace {

const std::string kSrc = CS_SOURCE_DIR;

std::vector<std::string> corpus() {
  std::vector<std::string> texts;
  ParquetReader(kSrc + "/assets/demo/alpaca_demo.parquet").for_each_row({"text"}, [&](const ParquetRow& r) {
    texts.emplace_back(*r.string(0));
  });
  std::ifstream f(kSrc + "/tests/fixtures/tokenizer/varied.json");
  const auto j = nlohmann::json::parse(f);
  for (const auto& c : j.at("texts")) texts.push_back(c.at("text").get<std::string>());
  // Prose, code and markdown: the project's own documents, paragraph by paragraph.
  for (const char* doc : {"/README.md", "/docs/data.md", "/docs/training.md", "/docs/operations.md",
                          "/docs/performance.md", "/docs/formats.md", "/examples/baichuan/README.md"}) {
    std::ifstream d(kSrc + doc);
    const std::string all((std::istreambuf_iterator<char>(d)), {});
    for (size_t at = 0; at < all.size();) {
      size_t end = all.find("\n\n", at);
      if (end == std::string::npos) end = all.size();
      texts.push_back(all.substr(at, end - at));
      at = end + 2;
    }
  }
  for (const char* t : {"", " ", "a", " a", "a ", "a b", "a  b", " a b ", "a\tb c", "x y\nz w", "1 + 2 = 3", "'a' \"b\" (c) [d]",
                        "end.", "中文 word 中文", "word 中文 word", "emoji 😀 x", "a\xC2\xA0" "b c", "ﬁ ﬁne ﬃ", "e\xCC\x81 e"})
    texts.emplace_back(t);
  // Random strings over a small alphabet that makes every neighbour pattern around spaces likely.
  const std::vector<std::string> alphabet = {"a", "b", "Z", "1", ".", ",", "'", " ", " ", " ", "\t", "\n", "é",
                                             "中", "😀", "ﬁ", "\xC2\xA0", "-", "the", " of", "ing"};
  std::mt19937 rng(7);
  for (int i = 0; i < 3000; ++i) {
    std::string s;
    for (int k = int(rng() % 40); k > 0; --k) s += alphabet[rng() % alphabet.size()];
    texts.push_back(s);
  }
  return texts;
}

void expect_same_ids(const std::string& tokenizer, bool expect_cutting) {
  const Tokenizer tok(tokenizer);
  WordCachedEncoder enc(tok.model_path());
  EXPECT_EQ(enc.cutting(), expect_cutting);
  const auto texts = corpus();
  ASSERT_GT(texts.size(), 20000u);
  size_t differ = 0;
  for (int pass = 0; pass < 2; ++pass) {  // the second pass hits the cache for every word
    for (const auto& t : texts) {
      std::vector<int32_t> want, got{7};  // appends after what is there
      tok.encode_raw(t, want);
      enc.encode(t, got);
      got.erase(got.begin());
      if (got != want && differ++ < 5) ADD_FAILURE() << "ids differ for: [" << t << "]";
    }
  }
  EXPECT_EQ(differ, 0u);
  if (expect_cutting) {
    EXPECT_GT(enc.cached_words(), 1000u);
  }
}

TEST(WordCache, DemoTokenizerIdsEqualSentencePiece) { expect_same_ids(kSrc + "/assets/demo/tokenizer", true); }

TEST(WordCache, BaichuanTokenizerIdsEqualSentencePiece) {
  const std::string dir = kSrc + "/../shared/reference/baichuan-13b-base";
  if (!std::filesystem::exists(dir + "/tokenizer.model")) GTEST_SKIP() << "../shared/reference not present";
  const Tokenizer tok(dir);
  expect_same_ids(dir, WordCachedEncoder(tok.model_path()).cutting());
}

}  // namespace
}  // namespace cs
