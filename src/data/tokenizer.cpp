#include "data/tokenizer.h"

#include <fmt/core.h>
#include <sentencepiece_processor.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_io.h"

namespace cs {

Tokenizer::Tokenizer(const std::string& path) : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    model_path_ = path + "/tokenizer.model";
    if (!fs::exists(model_path_))
      throw Error(fmt::format("[tokenizer] {}: no tokenizer.model in this directory. Hint: pass a "
                              "Hugging Face tokenizer directory or a SentencePiece .model file", path));
    const std::string cfg = path + "/tokenizer_config.json";
    if (fs::exists(cfg)) {
      require_regular_file(cfg, "tokenizer");
      std::ifstream f(cfg);
      const auto j = nlohmann::json::parse(f, nullptr, false);
      if (j.is_discarded())
        throw Error(fmt::format("[tokenizer] {}: not valid JSON", cfg));
      add_bos_ = j.value("add_bos_token", false);
      add_eos_ = j.value("add_eos_token", false);
    }
  } else if (fs::exists(path, ec)) {
    model_path_ = path;
  } else {
    throw Error(fmt::format("[tokenizer] {}: no such file or directory. Hint: --tokenizer-name-or-path "
                            "takes a Hugging Face tokenizer directory or a SentencePiece .model file", path));
  }
  require_regular_file(model_path_, "tokenizer", "pass a SentencePiece .model file or a directory holding tokenizer.model");
  const auto status = sp_->Load(model_path_);
  if (!status.ok())
    throw Error(fmt::format("[tokenizer] {}: not a SentencePiece model ({})", model_path_, status.ToString()));
  bos_ = sp_->bos_id();
  eos_ = sp_->eos_id();
  pad_ = sp_->pad_id() >= 0 ? sp_->pad_id() : sp_->unk_id();
}

Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

int64_t Tokenizer::vocab_size() const { return sp_->GetPieceSize(); }

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  sp_->Encode(text, &ids);
  std::vector<int32_t> out;
  out.reserve(ids.size() + 2);
  if (add_bos_ && bos_ >= 0) out.push_back(bos_);
  out.insert(out.end(), ids.begin(), ids.end());
  if (add_eos_ && eos_ >= 0) out.push_back(eos_);
  return out;
}

void Tokenizer::encode_raw(std::string_view text, std::vector<int32_t>& out) const {
  if (text.empty()) return;
  std::vector<int> ids;
  sp_->Encode(text, &ids);
  out.insert(out.end(), ids.begin(), ids.end());
}

std::string Tokenizer::piece(int32_t id) const {
  return id >= 0 && id < vocab_size() ? sp_->IdToPiece(id) : std::string();
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string text;
  const auto st = sp_->Decode(std::vector<int>(ids.begin(), ids.end()), &text);
  if (!st.ok())
    throw Error(fmt::format("[tokenizer] {}: cannot decode {} ids: {}. Hint: are they this tokenizer's ids?",
                            model_path_, ids.size(), st.ToString()));
  return text;
}

}  // namespace cs
