// How a record becomes a document (`chuanspeed preprocess --handler-name`). A record is a JSON
// object (a JSON/JSONL record, or a Parquet row's wanted columns). The exact templates are in
// docs/data.md; the strings live in handlers.cpp.
//   plain         one document per --json-keys key (Megatron's preprocess_data.py): the value is
//                 a string, or a list of strings (each becomes one sequence, as Megatron's
//                 sentence lists do).
//   alpaca        instruction / input / output in the Stanford Alpaca prompt template; one
//                 document under the key `text`.
//   conversation  FastChat's {"id", "conversations": [{"from": "human"|"gpt", "value"}]} as a
//                 Vicuna v1.1 transcript; each assistant turn ends with the EOS token (where
//                 FastChat writes "</s>"); one document under the key `text`.
#pragma once
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace cs {

// A run of text to tokenize, followed by the EOS id when eos_after.
struct TextPiece {
  std::string text;
  bool eos_after = false;
};
// One sequence of a document (Megatron's "sentence"): pieces tokenized and concatenated.
using Sequence = std::vector<TextPiece>;
// One document: its sequences, in order. Empty sequences are dropped when written.
using DocumentText = std::vector<Sequence>;

class RecordHandler {
 public:
  virtual ~RecordHandler() = default;
  // The output keys, one dataset each: PREFIX_<key>_document.{bin,idx}.
  virtual std::vector<std::string> output_keys() const = 0;
  // The columns a Parquet input must provide (absent optional ones read as empty).
  virtual std::vector<std::string> parquet_columns() const = 0;
  virtual std::vector<std::string> optional_columns() const { return {}; }
  // Fills OUT with one DocumentText per output key. ORIGIN ("file:line") prefixes errors.
  virtual void handle(const nlohmann::json& record, const std::string& origin,
                      std::vector<DocumentText>& out) const = 0;
};

// NAME is plain | alpaca | conversation (AscendSpeed's GeneralPretrainHandler and
// AlpacaPretrainHandler are accepted as plain and alpaca); JSON_KEYS is for plain. Throws
// cs::UsageError for an unknown name.
std::unique_ptr<RecordHandler> make_handler(const std::string& name, const std::vector<std::string>& json_keys);

// The Alpaca prompt for INSTRUCTION and INPUT (an empty input picks the shorter template): the
// document text without its output, i.e. what a fine-tuned model is asked at inference.
std::string alpaca_prompt(const std::string& instruction, const std::string& input);

// The templates, exposed for tests and docs.
extern const char* const kAlpacaWithInput;     // {instruction} {input} {output}
extern const char* const kAlpacaWithoutInput;  // {instruction} {output}
extern const char* const kVicunaSystem;

}  // namespace cs
