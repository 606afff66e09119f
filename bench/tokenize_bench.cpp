// The tokenization ceiling for `make bench-preprocess`: SentencePiece alone (libsentencepiece,
// through cs::Tokenizer) encoding every document of a file in one thread, with the text already
// in memory: no JSON, no writer, no threads. Documents are separated by NUL bytes.
//   tokenize_bench TOKENIZER TEXTS.bin
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "data/tokenizer.h"
#include "data/word_cache.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: tokenize_bench TOKENIZER TEXTS.bin\n");
    return 2;
  }
  const cs::Tokenizer tok(argv[1]);
  std::ifstream f(argv[2], std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string all = ss.str();
  std::vector<std::string_view> docs;
  for (size_t at = 0; at < all.size();) {
    size_t end = all.find('\0', at);
    if (end == std::string::npos) end = all.size();
    docs.emplace_back(all.data() + at, end - at);
    at = end + 1;
  }
  // Plain SentencePiece, then the word cache preprocess uses (same ids; a fresh cache).
  auto run = [&](const char* name, auto&& encode) {
    std::vector<int32_t> ids;
    int64_t tokens = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (const auto& d : docs) {
      ids.clear();
      encode(d, ids);
      tokens += int64_t(ids.size());
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("{\"bench\":\"%s\",\"documents\":%zu,\"tokens\":%lld,\"seconds\":%.3f,"
                "\"docs_per_s\":%.0f,\"tokens_per_s\":%.0f,\"mb_per_s\":%.2f}\n",
                name, docs.size(), (long long)tokens, s, docs.size() / s, tokens / s, all.size() / s / 1e6);
    return tokens;
  };
  const int64_t a = run("sentencepiece_alone", [&](std::string_view d, std::vector<int32_t>& o) { tok.encode_raw(d, o); });
  cs::WordCachedEncoder cached(tok.model_path());
  const int64_t b = run("word_cached", [&](std::string_view d, std::vector<int32_t>& o) { cached.encode(d, o); });
  if (a != b) {
    std::fprintf(stderr, "token counts differ: %lld vs %lld\n", (long long)a, (long long)b);
    return 1;
  }
  return 0;
}
