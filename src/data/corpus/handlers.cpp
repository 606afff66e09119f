#include "data/corpus/handlers.h"

#include <fmt/core.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/corpus/message_text.h"

namespace cs {

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

// A pretraining document's pieces: each run of text between EOS / role tokens as one text, so
// that it is tokenized as one string (the bytes preprocess wrote before instruction datasets).
Sequence joined(const Sequence& seq) {
  Sequence out;
  bool open = false;  // the last piece of OUT is text that later text continues
  for (const TextPiece& p : seq) {
    if (p.token < 0 && open) {
      out.back().text += p.text;
      out.back().eos_after = p.eos_after;
    } else {
      out.push_back({p.text, p.eos_after, false, p.token});
    }
    open = p.token < 0 && !p.eos_after;
  }
  return out;
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
  AlpacaHandler(PromptType type, bool instruction) : type_(type), instruction_(instruction) {}
  std::vector<std::string> output_keys() const override { return {"text"}; }
  std::vector<std::string> parquet_columns() const override { return {"instruction", "input", "output"}; }
  std::vector<std::string> optional_columns() const override { return {"input"}; }
  void handle(const nlohmann::json& rec, const std::string& origin, std::vector<DocumentText>& out) const override {
    object(rec, origin);
    const char* hint = "--handler-name alpaca reads the fields instruction, input (optional) and output";
    const std::string instruction = field(rec, "instruction", origin, false, hint);
    const std::string input = field(rec, "input", origin, true, hint);
    const std::string output = field(rec, "output", origin, false, hint);
    Sequence seq = alpaca_pieces(type_, instruction, input, &output);
    out.assign(1, DocumentText{instruction_ ? std::move(seq) : joined(seq)});
  }

 private:
  PromptType type_;
  bool instruction_;
};

class ConversationHandler final : public RecordHandler {
 public:
  ConversationHandler(PromptType type, bool instruction) : type_(type), instruction_(instruction) {}
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
    std::vector<ChatTurn> turns;
    for (size_t t = 0; t < it->size(); ++t) {
      const auto& turn = (*it)[t];
      const std::string where = fmt::format("{} turn {}", origin, t);
      if (!turn.is_object()) bad(where, fmt::format("the turn is a JSON {}, not an object", type_name(turn)), hint);
      const std::string from = field(turn, "from", where, false, hint);
      const bool human = from == "human" || from == "user";
      if (!human && from != "gpt" && from != "assistant")
        bad(where, fmt::format("'from' is '{}'", message_excerpt(from)), "expected human or gpt (user / assistant also accepted)");
      // FastChat drops a leading assistant turn; after that the roles must alternate.
      if (turns.empty() && !human) continue;
      if (!turns.empty() && human == turns.back().user)
        bad(where, fmt::format("two {} turns in a row", human ? "human" : "gpt"), "turns must alternate human, gpt");
      turns.push_back({human, field(turn, "value", where, false, hint)});
    }
    Sequence seq = chat_pieces(type_, turns, false);
    out.assign(1, DocumentText{});
    if (!seq.empty()) out[0].push_back(instruction_ ? std::move(seq) : joined(seq));
  }

 private:
  PromptType type_;
  bool instruction_;
};

}  // namespace

std::unique_ptr<RecordHandler> make_handler(const std::string& name, const std::vector<std::string>& json_keys,
                                            const std::string& prompt_type, bool instruction) {
  if (name == "plain" || name == "GeneralPretrainHandler") {
    if (instruction)
      throw UsageError(fmt::format("--is-instruction-dataset: --handler-name {} has no prompt and response to tell "
                                   "apart. Hint: use --handler-name alpaca or conversation", name));
    if (!prompt_type.empty())
      throw UsageError(fmt::format("--prompt-type {}: --handler-name {} uses no template. Hint: use --handler-name "
                                   "alpaca or conversation", prompt_type, name));
    if (json_keys.empty()) throw UsageError("--json-keys: give at least one key (default: text)");
    return std::make_unique<PlainHandler>(json_keys);
  }
  if (name == "alpaca" || name == "AlpacaPretrainHandler")
    return std::make_unique<AlpacaHandler>(parse_prompt_type(prompt_type.empty() ? "alpaca" : prompt_type),
                                           instruction);
  if (name == "conversation") {
    const PromptType type = parse_prompt_type(prompt_type.empty() ? "vicuna" : prompt_type);
    if (type == PromptType::kAlpaca)
      throw UsageError("--prompt-type alpaca: the Alpaca template holds one instruction and one response, not a "
                       "conversation. Hint: use --prompt-type vicuna or baichuan with --handler-name conversation");
    return std::make_unique<ConversationHandler>(type, instruction);
  }
  throw UsageError(fmt::format("--handler-name {}: expected plain, alpaca or conversation", name));
}

}  // namespace cs
