// Prompt templates (--prompt-type alpaca | vicuna | baichuan): how an Alpaca record or a
// conversation becomes text pieces, each marked context or trained. One place for the strings and
// the templating, used by `preprocess` (documents, and loss masks for instruction datasets) and by
// `generate` (the prompt a fine-tuned model is asked), so training and inference see the same
// tokens. Not a tokenizer: encode_pieces() takes the encoder. Exact templates: docs/data.md.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace cs {

class Tokenizer;

// A run of text to tokenize, followed by the EOS id when eos_after; or, when token >= 0, that one
// token id and no text (Baichuan's role tokens, which no text encodes to).
struct TextPiece {
  std::string text;
  bool eos_after = false;
  // Instruction datasets: the piece's tokens (and its EOS) are what the model learns to produce
  // (loss mask 1); otherwise context (0).
  bool trained = false;
  int32_t token = -1;
};
// One sequence of a document (Megatron's "sentence"): pieces tokenized and concatenated.
using Sequence = std::vector<TextPiece>;

enum class PromptType { kAlpaca, kVicuna, kBaichuan };

// alpaca | vicuna | baichuan; anything else is a cs::UsageError naming --prompt-type.
PromptType parse_prompt_type(const std::string& name);
const char* prompt_type_name(PromptType type);

// Baichuan-13B-Chat's generation_config.json: user_token_id 195, assistant_token_id 196; in its
// tokenizer.model these ids are the user-defined pieces below.
inline constexpr int32_t kBaichuanUserToken = 195;
inline constexpr int32_t kBaichuanAssistantToken = 196;
extern const char* const kBaichuanUserPiece;       // "<reserved_102>"
extern const char* const kBaichuanAssistantPiece;  // "<reserved_103>"

// Checks that TOK has the tokens TYPE writes as ids: for baichuan the two role pieces at their
// ids. Throws a one-line cs::UsageError naming --prompt-type. (A missing EOS piece is reported
// per record by preprocess, as before templates were selectable.)
void check_prompt_tokenizer(PromptType type, const Tokenizer& tok);

// One turn of a conversation.
struct ChatTurn {
  bool user = true;
  std::string text;
};

// The pieces of a conversation whose turns alternate, user first, under vicuna or baichuan: the
// system prompt and user turns and role tags are context; each assistant turn is trained and ends
// with EOS. OPEN: end with the assistant's cue, the prompt for generating the next answer. No turns:
// no pieces. Alpaca has no conversation form (CHECKed by the caller).
Sequence chat_pieces(PromptType type, const std::vector<ChatTurn>& turns, bool open);

// The pieces of an Alpaca record: under alpaca the Stanford Alpaca prompt then the output; under
// vicuna / baichuan one user turn (instruction, plus "\n" + input when the input is not empty) and
// one assistant turn. OUTPUT null: the prompt only, ending where the response starts.
Sequence alpaca_pieces(PromptType type, const std::string& instruction, const std::string& input,
                       const std::string* output);

// The Alpaca prompt for INSTRUCTION and INPUT (an empty input picks the shorter template): the
// document text without its output, i.e. what a fine-tuned model is asked at inference.
std::string alpaca_prompt(const std::string& instruction, const std::string& input);

// Appends TEXT's ids (no bos / eos) to OUT.
using EncodeFn = std::function<void(std::string_view text, std::vector<int32_t>& out)>;

// Appends the ids of SEQ to IDS: text between EOS / role tokens is tokenized as one text, as a
// Hugging Face tokenizer splits a string around special tokens. With MASK (instruction datasets),
// context and trained text are tokenized apart, so their boundary is a token boundary: the context
// gets exactly its own ids (what `generate` feeds the model) and the trained text the ids that
// follow them in the joined text's tokenization when that starts with the context's ids (then the
// ids equal those without MASK), else its own ids; MASK gets one 0/1 per id. EOS_ID must be >= 0
// when a piece has eos_after.
void encode_pieces(const Sequence& seq, const EncodeFn& encode, int32_t eos_id, std::vector<int32_t>& ids,
                   std::vector<int32_t>* mask);

// The templates, exposed for tests and docs.
extern const char* const kAlpacaWithInput;     // {instruction} {input} {output}
extern const char* const kAlpacaWithoutInput;  // {instruction} {output}
extern const char* const kVicunaSystem;

}  // namespace cs
