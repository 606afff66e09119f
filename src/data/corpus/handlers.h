// How a record becomes a document (`chuanspeed preprocess --handler-name`). A record is a JSON
// object (a JSON/JSONL record, or a Parquet row's wanted columns). The exact templates are in
// docs/data.md; the strings live in prompt_template.cpp.
//   plain         one document per --json-keys key (Megatron's preprocess_data.py): the value is
//                 a string, or a list of strings (each becomes one sequence, as Megatron's
//                 sentence lists do).
//   alpaca        instruction / input / output in the Stanford Alpaca prompt template (or as one
//                 user and one assistant turn under --prompt-type vicuna / baichuan); one
//                 document under the key `text`.
//   conversation  FastChat's {"id", "conversations": [{"from": "human"|"gpt", "value"}]} as a
//                 Vicuna v1.1 transcript (or Baichuan-13B-Chat's role tokens under --prompt-type
//                 baichuan); each assistant turn ends with the EOS token (where FastChat writes
//                 "</s>"); one document under the key `text`.
#pragma once
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "data/corpus/prompt_template.h"  // TextPiece, Sequence, the templates

namespace cs {

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
// AlpacaPretrainHandler are accepted as plain and alpaca); JSON_KEYS is for plain. PROMPT_TYPE
// (--prompt-type; empty: alpaca for alpaca, vicuna for conversation) picks the template.
// INSTRUCTION (--is-instruction-dataset): keep context and trained pieces apart for the loss
// mask; otherwise each run of text between EOS / role tokens is one piece, as in pretraining.
// Throws cs::UsageError for an unknown name, a prompt type the handler has no form for, and
// plain with PROMPT_TYPE or INSTRUCTION.
std::unique_ptr<RecordHandler> make_handler(const std::string& name, const std::vector<std::string>& json_keys,
                                            const std::string& prompt_type = "", bool instruction = false);

}  // namespace cs
