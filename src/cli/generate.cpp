// chuanspeed generate --load CKPT|HF_DIR (--tokenizer-name-or-path TOK --prompt TEXT |
//                     --prompt-file F | --prompt-ids 1,2,3) [--max-new-tokens N]
//                     [--temperature T] [--top-k K] [--top-p P] [--seed S]
//                     [--prompt-type alpaca|vicuna|baichuan]
// Prefills the prompt into the KV cache, then decodes one token at a time; prints the text (or the
// ids without a tokenizer) and tokens/s. Chooses only among the tokenizer's ids (a padded model
// vocabulary's extra rows are no tokens). Stops at the tokenizer's end-of-sequence id, at
// --max-new-tokens, or at the model's positions (with a note on stderr).
#include <fmt/core.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "backend/backend.h"
#include "backend/cpu/thread_count.h"
#include "backend/host_copy.h"
#include "checkpoint/native.h"
#include "cli/commands.h"
#include "cli/parse.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/timer.h"
#include "data/corpus/prompt_template.h"
#include "data/tokenizer.h"
#include "model/decoder.h"
#include "train/checkpointing.h"
#include "train/hf_model.h"
#include "train/sampling.h"

namespace cs::cli {

namespace {
std::vector<int32_t> parse_ids(const std::string& s) {
  std::vector<int32_t> ids;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      ids.push_back(std::stoi(item));
    } catch (const std::exception&) {
      throw UsageError(fmt::format("--prompt-ids {}: expected comma-separated token ids", s));
    }
  }
  if (ids.empty()) throw UsageError("--prompt-ids: no ids given");
  return ids;
}

// A number >= 0, in one line (CLI::NonNegativeNumber's message prints DBL_MAX's 300 digits).
const CLI::Validator& non_negative() {
  static const CLI::Validator v(
      [](std::string& in) -> std::string {
        // strtod, not stod: stod throws for a subnormal such as 1e-310, a valid tiny temperature.
        char* end = nullptr;
        const double d = std::strtod(in.c_str(), &end);
        if (!in.empty() && end == in.c_str() + in.size() && d >= 0) return "";
        return "expected a number 0 or greater, got '" + in + "'";
      },
      "NONNEGATIVE");
  return v;
}

// Tokenizer::decode ignores SentencePiece's status, which fails on an id outside the tokenizer
// (the text then comes back empty): check the ids here so such a failure is an error, not "".
std::string decode_checked(const Tokenizer& tok, const std::vector<int32_t>& ids) {
  for (int32_t id : ids)
    if (id < 0 || id >= tok.vocab_size())
      throw Error(fmt::format("[generate] cannot decode token id {}: outside the tokenizer's vocabulary [0, {})", id,
                              tok.vocab_size()));
  return tok.decode(ids);
}

}  // namespace

// One line of a JSON --prompt-file: the prompt, and the expected answer when there is one.
struct PromptRecord {
  Sequence prompt;  // the prompt's pieces: one text, or an Alpaca record in --prompt-type's template
  std::string output, task, shown;
  bool has_output = false;
};

PromptRecord parse_prompt_record(const std::string& line, const std::string& where, PromptType type) {
  const auto j = nlohmann::json::parse(line, nullptr, false);
  auto str = [&](const char* k) {
    const auto it = j.find(k);
    if (it == j.end() || it->is_null()) return std::string();
    if (!it->is_string()) throw Error(fmt::format("[generate] {}: field '{}' is not a string", where, k));
    return it->get<std::string>();
  };
  if (j.is_discarded() || !j.is_object())
    throw Error(fmt::format("[generate] {}: not a JSON object. Hint: a JSON line is {{\"prompt\": ...}} or an "
                            "Alpaca record {{\"instruction\", \"input\", \"output\"}}", where));
  PromptRecord r;
  if (j.contains("prompt")) {
    r.shown = str("prompt");
    r.prompt = {{r.shown}};
  } else if (j.contains("instruction")) {
    // The template preprocess wrote the training documents with, up to where the response starts.
    r.prompt = alpaca_pieces(type, str("instruction"), str("input"), nullptr);
    r.shown = str("instruction") + (str("input").empty() ? "" : " | " + str("input"));
  } else {
    throw Error(fmt::format("[generate] {}: no 'prompt' or 'instruction' field", where));
  }
  r.has_output = j.contains("output");
  r.output = str("output");
  r.task = str("task");
  return r;
}

// Exact-match scoring of answers against the records' outputs (whitespace at the ends ignored).
struct Scores {
  std::map<std::string, std::pair<int, int>> per_task;  // task -> (right, total)
  int right = 0, total = 0;
  static std::string trim(const std::string& s) {
    const size_t a = s.find_first_not_of(" \t\n"), b = s.find_last_not_of(" \t\n");
    return a == std::string::npos ? "" : s.substr(a, b - a + 1);
  }
  void add(const PromptRecord& r, const std::string& answer) {
    const bool ok = trim(answer) == trim(r.output);
    std::printf("%s -> %s", r.shown.c_str(), trim(answer).c_str());
    if (r.has_output) std::printf("   [%s%s]", ok ? "right" : "wrong, expected ", ok ? "" : trim(r.output).c_str());
    std::printf("\n");
    if (!r.has_output) return;
    right += ok;
    ++total;
    auto& t = per_task[r.task.empty() ? "all" : r.task];
    t.first += ok;
    ++t.second;
  }
  void print() const {
    if (total == 0) return;
    std::printf("exact match: %d / %d = %.1f%%", right, total, 100.0 * right / total);
    if (per_task.size() > 1)
      for (const auto& [task, rt] : per_task) std::printf("  %s %d/%d", task.c_str(), rt.first, rt.second);
    std::printf("\n");
  }
};

// The new tokens' text as it follows the prompt. SentencePiece drops the leading "▁" of the first
// piece it decodes, so decoding the new tokens alone loses the space between prompt and
// continuation ("task" + "▁B" -> "taskB"): decode both together and keep what follows the
// prompt's own decoding. When that is not a prefix (pieces merged across the boundary), the new
// tokens alone, so the line still starts with the prompt as typed.
std::string continuation(const Tokenizer& tok, const std::vector<int32_t>& prompt, const std::vector<int32_t>& out) {
  std::vector<int32_t> all = prompt;
  all.insert(all.end(), out.begin(), out.end());
  const std::string head = decode_checked(tok, prompt), full = decode_checked(tok, all);
  return full.rfind(head, 0) == 0 ? full.substr(head.size()) : decode_checked(tok, out);
}

int generate_main(int argc, char** argv) {
  CLI::App app("Generate text with a trained model (KV cache)", "generate");
  std::string load, tokenizer, prompt, prompt_file, prompt_ids;
  int64_t max_new = 64;
  SamplingParams sp;
  app.add_option("--load", load, "a native checkpoint, a Hugging Face directory or a Megatron-LM checkpoint")
      ->required();
  app.add_option("--tokenizer-name-or-path", tokenizer, "Hugging Face tokenizer dir or SentencePiece .model");
  const CLI::Option* o_prompt = app.add_option("--prompt", prompt, "the prompt text (\"\": start from BOS)");
  const CLI::Option* o_file = app.add_option(
      "--prompt-file", prompt_file,
      "prompts, one a line; a JSON line {\"prompt\"} or an Alpaca record {\"instruction\", \"input\", "
      "\"output\"} (the output, when given, is scored by exact match)");
  const CLI::Option* o_ids = app.add_option("--prompt-ids", prompt_ids, "a prompt as token ids (no tokenizer needed)");
  app.add_option("--max-new-tokens", max_new, "tokens to generate")->check(positive());
  app.add_option("--temperature", sp.temperature, "0: greedy")->check(non_negative());
  app.add_option("--top-k", sp.top_k, "sample from the k most likely tokens (0: all)")->check(non_negative());
  app.add_option("--top-p", sp.top_p, "nucleus sampling threshold")->check(CLI::Range(0.0, 1.0));
  app.add_option("--seed", sp.seed, "sampling seed");
  std::string prompt_type = "alpaca";
  app.add_option("--prompt-type", prompt_type,
                 "the template of --prompt-file's Alpaca records: alpaca, vicuna or baichuan (as preprocess's)");
  std::string device = "cpu";
  add_device_option(app, device);
  std::optional<int> threads;
  add_threads_option(app, threads);
  int code = 0;
  if (!parse(app, argc, argv, code)) return code;
  cpu::apply_threads(threads);
  // Given, not non-empty: --prompt "" is a prompt (generation from BOS alone).
  if (int(o_prompt->count() > 0) + int(o_file->count() > 0) + int(o_ids->count() > 0) != 1)
    throw UsageError("give exactly one of --prompt, --prompt-file or --prompt-ids");
  if (o_ids->count() == 0 && tokenizer.empty())
    throw UsageError("--prompt / --prompt-file need --tokenizer-name-or-path (or use --prompt-ids)");

  std::unique_ptr<Tokenizer> tok;
  std::vector<std::vector<int32_t>> prompts;
  const PromptType type = parse_prompt_type(prompt_type);
  std::vector<std::string> texts, where;  // where: each prompt, for error messages
  std::vector<Sequence> seqs;             // each prompt's pieces
  std::vector<PromptRecord> expected;
  Scores scores;
  if (o_ids->count()) {
    prompts.push_back(parse_ids(prompt_ids));
    where.push_back("the prompt");
  } else {
    tok = std::make_unique<Tokenizer>(tokenizer);
    check_prompt_tokenizer(type, *tok);
    if (o_prompt->count()) {
      texts.push_back(prompt);
      seqs.push_back({{prompt}});
      where.push_back("the prompt");
    }
    if (o_file->count()) require_regular_file(prompt_file, "generate", "--prompt-file takes a text or JSON Lines file");
    std::ifstream f(prompt_file);
    if (o_file->count() && !f) throw Error(fmt::format("[generate] --prompt-file {}: cannot open", prompt_file));
    int64_t lineno = 0;
    for (std::string line; o_file->count() && std::getline(f, line);) {
      ++lineno;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const std::string at = fmt::format("{}:{}", prompt_file, lineno);
      where.push_back("the prompt at " + at);
      if (line[0] != '{') {
        texts.push_back(line);
        seqs.push_back({{line}});
        continue;
      }
      const PromptRecord r = parse_prompt_record(line, at, type);
      texts.push_back(r.shown);
      seqs.push_back(r.prompt);
      expected.push_back(r);
    }
    if (texts.empty())
      throw Error(fmt::format("[generate] --prompt-file {}: no prompts (the file is empty or blank); expected one "
                              "prompt a line, plain text or JSON", prompt_file));
    if (!expected.empty() && expected.size() != texts.size())
      throw UsageError(fmt::format("--prompt-file {}: mixes JSON records and plain lines; use one form", prompt_file));
    // As Tokenizer::encode: bos / eos when the tokenizer config asks; role tokens as their ids.
    const EncodeFn encode = [&](std::string_view t, std::vector<int32_t>& out) { tok->encode_raw(t, out); };
    for (const Sequence& s : seqs) {
      std::vector<int32_t>& ids = prompts.emplace_back();
      if (tok->add_bos() && tok->bos_id() >= 0) ids.push_back(tok->bos_id());
      encode_pieces(s, encode, tok->eos_id(), ids, nullptr);
      if (tok->add_eos() && tok->eos_id() >= 0) ids.push_back(tok->eos_id());
    }
  }

  auto backend = make_backend(device);
  auto ctx = backend->make_context();
  SingleGroup tp("tp");
  MemoryRequest req;  // one sequence of the model's positions, with its KV cache
  req.kv_cache = true;
  std::unique_ptr<Model> model = load_model_weights(load, *ctx, tp, 1, 0, req);
  const int64_t cap = model->config().max_seq_length;
  // Megatron pads the model's vocabulary (64000 -> 64512 at TP 8): the padded rows are no token
  // the tokenizer can decode, so sampling looks only at the tokenizer's ids, a prefix of the row.
  int64_t v = model->config().vocab_size;
  if (tok && v < tok->vocab_size())
    throw Error(fmt::format("[generate] the model's vocabulary of {} is smaller than the tokenizer's {} pieces ({}); "
                            "expected the tokenizer the model was trained with. Hint: check --tokenizer-name-or-path",
                            v, tok->vocab_size(), tok->model_path()));
  if (tok) v = tok->vocab_size();
  for (size_t pi = 0; pi < prompts.size(); ++pi) {
    std::vector<int32_t>& ids = prompts[pi];
    if (ids.empty() && tok) ids.push_back(tok->bos_id() >= 0 ? tok->bos_id() : 0);
    if (int64_t(ids.size()) >= cap)
      throw Error(fmt::format("[generate] {} is {} tokens but the model has {} positions; expected at most {} to "
                              "leave room for new tokens. Hint: shorten the prompt",
                              where[pi], ids.size(), cap, cap - 1));
  }

  Decoder dec(*model, 1, cap);
  int64_t total_new = 0, cut = 0, cut_len = 0;
  double total_secs = 0;
  for (size_t pi = 0; pi < prompts.size(); ++pi) {
    const std::vector<int32_t>& ids = prompts[pi];
    dec.reset();
    Timer t;
    // Sampling is a host edge: the last position's logits come back each step.
    std::vector<float> logits = read_f32(*ctx, dec.step(ids.data(), int64_t(ids.size())));
    std::vector<int32_t> out;
    bool eos = false;
    for (int64_t i = 0; i < max_new && dec.length() < cap; ++i) {
      const int32_t next = choose_token(logits.data(), v, sp, uint64_t(pi) << 32 | uint64_t(i));
      out.push_back(next);
      if ((eos = tok && next == tok->eos_id())) break;
      if (dec.length() < cap && i + 1 < max_new) logits = read_f32(*ctx, dec.step(&next, 1));
    }
    if (!eos && int64_t(out.size()) < max_new) {  // stopped by the model's positions, not by the user
      ++cut;
      cut_len = int64_t(out.size());
    }
    const double secs = t.seconds();
    if (!expected.empty()) {
      if (eos) out.pop_back();
      scores.add(expected[pi], decode_checked(*tok, out));  // trimmed there, so the dropped "▁" is no loss
    } else if (tok) {
      std::printf("%s%s\n", texts[pi].c_str(), continuation(*tok, ids, out).c_str());
    } else {
      std::string s;
      for (size_t i = 0; i < out.size(); ++i) {  // two appends: GCC 12 misreads "," + string (-Wrestrict)
        if (i) s += ',';
        s += std::to_string(out[i]);
      }
      std::printf("%s\n", s.c_str());
    }
    total_new += int64_t(out.size());
    total_secs += secs;
    if (prompts.size() == 1)
      std::fprintf(stderr, "[generate] %zu prompt + %zu new tokens in %.3f s: %.1f tokens/s\n", ids.size(),
                   out.size(), secs, double(out.size()) / std::max(secs, 1e-9));
  }
  if (prompts.size() > 1)
    std::fprintf(stderr, "[generate] %zu prompts, %lld new tokens in %.3f s: %.1f tokens/s\n", prompts.size(),
                 (long long)total_new, total_secs, double(total_new) / std::max(total_secs, 1e-9));
  if (cut == 1 && prompts.size() == 1)
    std::fprintf(stderr, "[generate] note: stopped after %lld new token(s), at the model's %lld positions (not at "
                 "--max-new-tokens %lld)\n", (long long)cut_len, (long long)cap, (long long)max_new);
  else if (cut > 0)
    std::fprintf(stderr, "[generate] note: %lld of %zu prompts stopped at the model's %lld positions (not at "
                 "--max-new-tokens %lld)\n", (long long)cut, prompts.size(), (long long)cap, (long long)max_new);
  scores.print();
  return 0;
}

}  // namespace cs::cli
