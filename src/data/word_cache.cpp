#include "data/word_cache.h"

#include <algorithm>

#include <fmt/core.h>
#include <sentencepiece_processor.h>

#include "core/error.h"
#include "core/file_io.h"

namespace cs {

namespace {
constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's whitespace mark
constexpr size_t kMaxCachedPart = 48;
// Then the cache starts over: ~40 MB per worker at most, whatever the corpus.
constexpr size_t kMaxCacheEntries = size_t(1) << 18;

bool ascii_word_char(char c) { return c > ' ' && c < 127; }

// True when every piece holds "▁" only as a leading run, so no piece can span "x▁".
bool space_only_leading(const sentencepiece::SentencePieceProcessor& sp) {
  for (int id = 0; id < sp.GetPieceSize(); ++id) {
    std::string_view p = sp.IdToPiece(id);
    while (p.substr(0, kSpace.size()) == kSpace) p.remove_prefix(kSpace.size());
    if (p.find(kSpace) != std::string_view::npos) return false;
  }
  return true;
}
}  // namespace

WordCachedEncoder::WordCachedEncoder(const std::string& model_path)
    : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
  require_regular_file(model_path, "tokenizer", "pass a SentencePiece .model file or a directory holding tokenizer.model");
  const auto status = sp_->Load(model_path);
  if (!status.ok())
    throw Error(fmt::format("[tokenizer] {}: not a SentencePiece model ({})", model_path, status.ToString()));
  cutting_ = space_only_leading(*sp_);
  sp_->Encode("a", &prefix_ids_);
}

WordCachedEncoder::~WordCachedEncoder() = default;

void WordCachedEncoder::encode_part(std::string_view part, bool first, std::vector<int32_t>& out) {
  // A first part gets the dummy prefix and other parts do not: only the others are cached.
  const bool cacheable = !first && part.size() <= kMaxCachedPart;
  if (cacheable) {
    const auto it = cache_.find(part);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t start = out.size();
  if (first) {
    sp_->Encode(part, &scratch_);
    out.insert(out.end(), scratch_.begin(), scratch_.end());
  } else {
    buf_.resize(1 + part.size());  // "a" + part (written in place: GCC 12's -Wrestrict misreads append)
    buf_[0] = 'a';
    std::copy(part.begin(), part.end(), buf_.begin() + 1);
    sp_->Encode(buf_, &scratch_);
    if (scratch_.size() < prefix_ids_.size() || !std::equal(prefix_ids_.begin(), prefix_ids_.end(), scratch_.begin()))
      throw std::logic_error("prefix");  // caught by encode(): the text goes to SentencePiece whole
    out.insert(out.end(), scratch_.begin() + long(prefix_ids_.size()), scratch_.end());
  }
  if (cacheable) {
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();
    cache_.emplace(std::string(part), std::vector<int32_t>(out.begin() + long(start), out.end()));
  }
}

void WordCachedEncoder::encode(std::string_view text, std::vector<int32_t>& out) {
  if (text.empty()) return;
  const size_t start = out.size();
  if (cutting_) {
    try {
      size_t from = 0;
      for (size_t i = 1; i + 1 < text.size(); ++i) {
        if (text[i] == ' ' && ascii_word_char(text[i - 1]) && ascii_word_char(text[i + 1])) {
          encode_part(text.substr(from, i - from), from == 0, out);
          from = i;
        }
      }
      encode_part(text.substr(from), from == 0, out);
      return;
    } catch (const std::logic_error&) {
      out.resize(start);
    }
  }
  sp_->Encode(text, &scratch_);
  out.insert(out.end(), scratch_.begin(), scratch_.end());
}

}  // namespace cs
