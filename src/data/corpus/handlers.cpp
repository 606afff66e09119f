#include "data/corpus/handlers.h"

#include <fmt/core.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/corpus/message_text.h"

namespace cs {

// Stanford Alpaca's PROMPT_DICT (train.py), with the response appended: the same text as the
// `text` column of Hugging Face's tatsu-lab/alpaca.
const char* const kAlpacaWithInput =
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n{output}";
const char* const kAlpacaWithoutInput =
    "Below is an instruction that describes a task. Write a response that appropriately completes "
    "the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n{output}";
// FastChat's vicuna_v1.1 conversation template: system, sep " ", sep2 "</s>", roles USER/ASSISTANT.
const char* const kVicunaSystem =
    "A chat between a curious user and an artificial intelligence assistant. The assistant gives "
    "helpful, detailed, and polite answers to the user's questions.";

namespace {

[[noreturn]] void bad(const std::string& origin, const std::string& what, const std::string& hint) {
  throw Error(fmt::format("[preprocess] {}: {}. Hint: {}", origin, what, hint));
}

const char* type_name(const nlohmann::json& v) { return v.type_name(); }

const nlohmann::json& object(const nlohmann::json& rec, const std::string& origin) {
  if (!rec.is_object())
    bad(origin, fmt::format("the record is a JSON {}, not an object", type_name(rec)),
        "each record must be an object such as {\"text\": \"...\"}");
  return rec;
}

// A string field; null reads as empty (Parquet's optional columns). MISSING_OK: absent = empty.
std::string field(const nlohmann::json& rec, const std::string& key, const std::string& origin, bool missing_ok,
                  const char* hint) {
  const auto it = rec.find(key);
  if (it == rec.end()) {
    if (missing_ok) return {};
    bad(origin, fmt::format("the record has no field '{}'", key), hint);
  }
  if (it->is_null()) return {};
  if (!it->is_string()) bad(origin, fmt::format("field '{}' is a JSON {}, not a string", key, type_name(*it)), hint);
  return it->get<std::string>();
}

class PlainHandler final : public RecordHandler {
 public:
  explicit PlainHandler(std::vector<std::string> keys) : keys_(std::move(keys)) {}
  std::vector<std::string> output_keys() const override { return keys_; }
  std::vector<std::string> parquet_columns() const override { return keys_; }
  void handle(const nlohmann::json& rec, const std::string& origin, std::vector<DocumentText>& out) const override {
    object(rec, origin);
    out.assign(keys_.size(), {});
    for (size_t k = 0; k < keys_.size(); ++k) {
      const auto it = rec.find(keys_[k]);
      if (it != rec.end() && it->is_array()) {  // a list of sentences, as Megatron accepts
        for (const auto& s : *it) {
          if (!s.is_string())
            bad(origin, fmt::format("field '{}' holds a JSON {}, not a string", keys_[k], type_name(s)),
                "a list field must hold strings only");
          out[k].push_back({{s.get<std::string>(), false}});
        }
      } else {
        out[k].push_back({{field(rec, keys_[k], origin, false,
                                 "--json-keys names the fields to tokenize (default text)"), false}});
      }
    }
  }

 private:
  std::vector<std::string> keys_;
};

class AlpacaHandler final : public RecordHandler {
 public:
  std::vector<std::string> output_keys() const override { return {"text"}; }
  std::vector<std::string> parquet_columns() const override { return {"instruction", "input", "output"}; }
  std::vector<std::string> optional_columns() const override { return {"input"}; }
  void handle(const nlohmann::json& rec, const std::string& origin, std::vector<DocumentText>& out) const override {
    object(rec, origin);
    const char* hint = "--handler-name alpaca reads the fields instruction, input (optional) and output";
    const std::string instruction = field(rec, "instruction", origin, false, hint);
    const std::string input = field(rec, "input", origin, true, hint);
    const std::string output = field(rec, "output", origin, false, hint);
    std::string text = alpaca_prompt(instruction, input) + output;
    out.assign(1, DocumentText{Sequence{{std::move(text), false}}});
  }
};

class ConversationHandler final : public RecordHandler {
 public:
  std::vector<std::string> output_keys() const override { return {"text"}; }
  std::vector<std::string> parquet_columns() const override { return {"conversations"}; }
  void handle(const nlohmann::json& rec, const std::string& origin, std::vector<DocumentText>& out) const override {
    object(rec, origin);
    const char* hint =
        "--handler-name conversation reads FastChat records: {\"id\", \"conversations\": [{\"from\": "
        "\"human\"|\"gpt\", \"value\": \"...\"}]}";
    const auto it = rec.find("conversations");
    if (it == rec.end()) bad(origin, "the record has no field 'conversations'", hint);
    if (!it->is_array()) bad(origin, fmt::format("'conversations' is a JSON {}, not a list", type_name(*it)), hint);
    Sequence seq;
    std::string text = std::string(kVicunaSystem) + " ";
    bool human_next = true, any = false;
    for (size_t t = 0; t < it->size(); ++t) {
      const auto& turn = (*it)[t];
      const std::string where = fmt::format("{} turn {}", origin, t);
      if (!turn.is_object()) bad(where, fmt::format("the turn is a JSON {}, not an object", type_name(turn)), hint);
      const std::string from = field(turn, "from", where, false, hint);
      const bool human = from == "human" || from == "user";
      if (!human && from != "gpt" && from != "assistant")
        bad(where, fmt::format("'from' is '{}'", message_excerpt(from)), "expected human or gpt (user / assistant also accepted)");
      // FastChat drops a leading assistant turn; after that the roles must alternate.
      if (!any && !human) continue;
      if (human != human_next)
        bad(where, fmt::format("two {} turns in a row", human ? "human" : "gpt"), "turns must alternate human, gpt");
      any = true;
      human_next = !human;
      const std::string value = field(turn, "value", where, false, hint);
      if (human) {
        text += "USER: " + value + " ";
      } else {
        text += "ASSISTANT: " + value;
        seq.push_back({std::move(text), true});  // FastChat's sep2 "</s>" is the EOS token here
        text.clear();
      }
    }
    if (!text.empty() && any) seq.push_back({std::move(text), false});  // a transcript ending with the user
    out.assign(1, DocumentText{});
    if (!seq.empty()) out[0].push_back(std::move(seq));
  }
};

}  // namespace

std::string alpaca_prompt(const std::string& instruction, const std::string& input) {
  // One pass over the template, so placeholder-like text inside a field is never substituted;
  // {output} ends both templates, so the prompt is everything before it.
  const std::string tmpl = input.empty() ? kAlpacaWithoutInput : kAlpacaWithInput;
  std::string text;
  for (size_t at = 0;;) {
    const size_t open = tmpl.find('{', at);
    const std::string name = tmpl.substr(open + 1, tmpl.find('}', open) - open - 1);
    text += tmpl.substr(at, open - at);
    if (name == "output") return text;
    text += name == "instruction" ? instruction : input;
    at = tmpl.find('}', open) + 1;
  }
}

std::unique_ptr<RecordHandler> make_handler(const std::string& name, const std::vector<std::string>& json_keys) {
  if (name == "plain" || name == "GeneralPretrainHandler") {
    if (json_keys.empty()) throw UsageError("--json-keys: give at least one key (default: text)");
    return std::make_unique<PlainHandler>(json_keys);
  }
  if (name == "alpaca" || name == "AlpacaPretrainHandler") return std::make_unique<AlpacaHandler>();
  if (name == "conversation") return std::make_unique<ConversationHandler>();
  throw UsageError(fmt::format("--handler-name {}: expected plain, alpaca or conversation", name));
}

}  // namespace cs
