// Tokenizer: SentencePiece through libsentencepiece, opened from a Hugging Face tokenizer
// directory (tokenizer.model + tokenizer_config.json: add_bos_token / add_eos_token) or a bare
// .model file. Ids are SentencePiece's own; the vocabulary size is the model's piece count
// (Megatron then pads it with --make-vocab-size-divisible-by).
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace cs {

class Tokenizer {
 public:
  // Throws cs::Error naming the path when it is neither a directory with tokenizer.model nor a
  // loadable SentencePiece model.
  explicit Tokenizer(const std::string& path);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  int64_t vocab_size() const;
  int32_t bos_id() const { return bos_; }
  int32_t eos_id() const { return eos_; }
  int32_t pad_id() const { return pad_; }
  bool add_bos() const { return add_bos_; }
  bool add_eos() const { return add_eos_; }
  // Text to ids (with bos / eos when the tokenizer config asks for them).
  std::vector<int32_t> encode(std::string_view text) const;
  // Appends TEXT's ids to OUT without bos / eos (a document built from several pieces adds
  // them once). Thread-safe: workers share one Tokenizer.
  void encode_raw(std::string_view text, std::vector<int32_t>& out) const;
  std::string decode(const std::vector<int32_t>& ids) const;
  // The piece of ID ("<reserved_102>", "▁the"); "" outside the vocabulary.
  std::string piece(int32_t id) const;
  const std::string& model_path() const { return model_path_; }

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::string model_path_;
  int32_t bos_ = -1, eos_ = -1, pad_ = -1;
  bool add_bos_ = false, add_eos_ = false;
};

}  // namespace cs
