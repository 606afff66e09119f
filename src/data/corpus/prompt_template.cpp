#include "data/corpus/prompt_template.h"

#include <fmt/core.h>

#include <algorithm>

#include "core/error.h"
#include "data/tokenizer.h"

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
// Ids 195 and 196 of Baichuan-13B's tokenizer.model (spm_decode --input_format=id).
const char* const kBaichuanUserPiece = "<reserved_102>";
const char* const kBaichuanAssistantPiece = "<reserved_103>";

PromptType parse_prompt_type(const std::string& name) {
  if (name == "alpaca") return PromptType::kAlpaca;
  if (name == "vicuna") return PromptType::kVicuna;
  if (name == "baichuan") return PromptType::kBaichuan;
  throw UsageError(fmt::format("--prompt-type {}: expected alpaca, vicuna or baichuan (docs/data.md)", name));
}

const char* prompt_type_name(PromptType type) {
  switch (type) {
    case PromptType::kAlpaca: return "alpaca";
    case PromptType::kVicuna: return "vicuna";
    case PromptType::kBaichuan: return "baichuan";
  }
  return "?";
}

void check_prompt_tokenizer(PromptType type, const Tokenizer& tok) {
  if (type != PromptType::kBaichuan) return;
  const bool ok = tok.vocab_size() > kBaichuanAssistantToken && tok.piece(kBaichuanUserToken) == kBaichuanUserPiece &&
                  tok.piece(kBaichuanAssistantToken) == kBaichuanAssistantPiece;
  if (!ok)
    throw UsageError(fmt::format("--prompt-type baichuan: the tokenizer {} ({} pieces) has no Baichuan role tokens "
                                 "(id {} {}, id {} {}). Hint: use Baichuan-13B's tokenizer, or --prompt-type alpaca "
                                 "or vicuna", tok.model_path(), tok.vocab_size(), kBaichuanUserToken,
                                 kBaichuanUserPiece, kBaichuanAssistantToken, kBaichuanAssistantPiece));
}

Sequence chat_pieces(PromptType type, const std::vector<ChatTurn>& turns, bool open) {
  Sequence seq;
  if (turns.empty()) return seq;
  if (type == PromptType::kBaichuan) {
    // Baichuan-13B-Chat's build_chat_input: each message is its role token followed by
    // tokenizer.encode(content), encoded on its own; no system prompt unless one is given.
    for (const ChatTurn& t : turns) {
      seq.push_back({"", false, false, t.user ? kBaichuanUserToken : kBaichuanAssistantToken});
      seq.push_back({t.text, !t.user, !t.user});
    }
    if (open) seq.push_back({"", false, false, kBaichuanAssistantToken});
    return seq;
  }
  // FastChat's vicuna_v1.1 (SeparatorStyle.ADD_COLON_TWO): "SYSTEM USER: q ASSISTANT: a</s>USER: ...".
  // The space after "ASSISTANT:" belongs to the answer: FastChat's generation prompt ends with
  // "ASSISTANT:", so that is the context the model sees.
  std::string text = std::string(kVicunaSystem) + " ";
  for (const ChatTurn& t : turns) {
    if (t.user) {
      text += "USER: " + t.text + " ";
      continue;
    }
    seq.push_back({text + "ASSISTANT:"});
    seq.push_back({" " + t.text, true, true});  // FastChat's sep2 "</s>" is the EOS token here
    text.clear();
  }
  if (open) text += "ASSISTANT:";
  if (!text.empty()) seq.push_back({std::move(text)});  // a transcript ending with the user
  return seq;
}

Sequence alpaca_pieces(PromptType type, const std::string& instruction, const std::string& input,
                       const std::string* output) {
  if (type == PromptType::kAlpaca) {
    Sequence seq{{alpaca_prompt(instruction, input)}};
    if (output) seq.push_back({*output, false, true});
    return seq;
  }
  std::vector<ChatTurn> turns{{true, input.empty() ? instruction : instruction + "\n" + input}};
  if (output) turns.push_back({false, *output});
  return chat_pieces(type, turns, output == nullptr);
}

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

void encode_pieces(const Sequence& seq, const EncodeFn& encode, int32_t eos_id, std::vector<int32_t>& ids,
                   std::vector<int32_t>* mask) {
  auto put = [&](const std::vector<int32_t>& got, bool trained) {
    ids.insert(ids.end(), got.begin(), got.end());
    if (mask) mask->insert(mask->end(), got.size(), trained ? 1 : 0);
  };
  for (size_t i = 0; i < seq.size();) {
    if (seq[i].token >= 0) {
      put({seq[i].token}, seq[i].trained);
      ++i;
      continue;
    }
    // A run: text pieces up to the first EOS or role token; the tokenizer sees it as one text.
    size_t j = i;
    while (j < seq.size() && seq[j].token < 0)
      if (seq[j++].eos_after) break;
    std::string run_text;
    std::vector<int32_t> run_ids;
    for (size_t k = i; k < j; ++k) {
      // Without a mask, or within pieces of one kind, there is no boundary to keep.
      std::string part = seq[k].text;
      const bool trained = seq[k].trained;
      while (k + 1 < j && (!mask || seq[k + 1].trained == trained)) part += seq[++k].text;
      std::vector<int32_t> got;
      if (run_text.empty()) {
        encode(part, got);
      } else {
        // The ids after the context's own when the joined text's tokenization starts with them
        // (the usual case: the templates end the context on "\n" or before a space), else the
        // part's own ids: the context's ids never change, as at inference.
        std::vector<int32_t> full;
        encode(run_text + part, full);
        if (full.size() >= run_ids.size() && std::equal(run_ids.begin(), run_ids.end(), full.begin()))
          got.assign(full.begin() + std::ptrdiff_t(run_ids.size()), full.end());
        else
          encode(part, got);
      }
      put(got, trained);
      run_text += part;
      run_ids.insert(run_ids.end(), got.begin(), got.end());
    }
    if (seq[j - 1].eos_after) put({eos_id}, seq[j - 1].trained);
    i = j;
  }
}

}  // namespace cs
