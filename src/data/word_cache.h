// A per-thread word cache in front of SentencePiece for `chuanspeed preprocess`: the same ids as
// Tokenizer::encode_raw, faster on natural text, where words repeat.
//
// Why it is exact. SentencePiece's BPE merges adjacent symbols only into pieces of the vocabulary,
// and ids come per final symbol; so where no piece (normal or user-defined) can span a position,
// the text's ids are the ids of the part before it followed by the ids of the part after it. The
// encoder cuts only at an ASCII space that has a printable, non-space ASCII character on both
// sides, and only for a vocabulary in which no piece holds "▁" (SentencePiece's space) other than
// as a leading run: no piece can then span the "x▁" of a cut, and Unicode normalisation has no
// rule across ASCII text. A part after a cut starts with its space; it is encoded as "a" + part,
// dropping the ids of "a" (checked to be exactly those of "a" alone, else the whole text goes to
// SentencePiece as is), so the part gets the "▁" the whole text gives it and no extra dummy prefix.
// Parts after a cut of up to 48 bytes are cached. Tests compare every id with plain SentencePiece on the demo
// corpus and a varied one, for the demo and the Baichuan-13B tokenizers.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace cs {

class WordCachedEncoder {
 public:
  // Loads MODEL_PATH (a SentencePiece .model); decides whether the vocabulary allows cutting.
  explicit WordCachedEncoder(const std::string& model_path);
  ~WordCachedEncoder();
  // Appends TEXT's ids to OUT (no bos / eos), equal to SentencePiece's Encode(TEXT).
  void encode(std::string_view text, std::vector<int32_t>& out);
  // False when the vocabulary has a piece with an inner "▁": then encode() is plain SentencePiece.
  bool cutting() const { return cutting_; }
  size_t cached_words() const { return cache_.size(); }

 private:
  void encode_part(std::string_view part, bool first, std::vector<int32_t>& out);
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::unordered_map<std::string, std::vector<int32_t>, Hash, std::equal_to<>> cache_;
  std::vector<int> prefix_ids_;  // ids of "a" alone
  std::vector<int> scratch_;
  std::string buf_;
  bool cutting_ = false;
};

}  // namespace cs
