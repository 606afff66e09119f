// chuanspeed generate --load CKPT|HF_DIR (--tokenizer-name-or-path TOK --prompt TEXT |
//                     --prompt-file F | --prompt-ids 1,2,3) [--max-new-tokens N]
//                     [--temperature T] [--top-k K] [--top-p P] [--seed S]
// Prefills the prompt into the KV cache, then decodes one token at a time; prints the text (or the
// ids without a tokenizer) and tokens/s. Stops at the tokenizer's end-of-sequence id.
#include <fmt/core.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "backend/backend.h"
#include "checkpoint/native.h"
#include "cli/commands.h"
#include "cli/parse.h"
#include "core/error.h"
#include "core/timer.h"
#include "data/corpus/handlers.h"
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
}  // namespace

// One line of a JSON --prompt-file: the prompt, and the expected answer when there is one.
struct PromptRecord {
  std::string prompt, output, task, shown;
  bool has_output = false;
};

PromptRecord parse_prompt_record(const std::string& line, const std::string& where) {
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
    r.prompt = r.shown = str("prompt");
  } else if (j.contains("instruction")) {
    r.prompt = alpaca_prompt(str("instruction"), str("input"));
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

int generate_main(int argc, char** argv) {
  CLI::App app("Generate text with a trained model (KV cache)", "generate");
  std::string load, tokenizer, prompt, prompt_file, prompt_ids;
  int64_t max_new = 64;
  SamplingParams sp;
  app.add_option("--load", load, "a native checkpoint or a Hugging Face directory")->required();
  app.add_option("--tokenizer-name-or-path", tokenizer, "Hugging Face tokenizer dir or SentencePiece .model");
  app.add_option("--prompt", prompt, "the prompt text");
  app.add_option("--prompt-file", prompt_file,
                 "prompts, one a line; a JSON line {\"prompt\"} or an Alpaca record {\"instruction\", \"input\", "
                 "\"output\"} (the output, when given, is scored by exact match)");
  app.add_option("--prompt-ids", prompt_ids, "a prompt as token ids (no tokenizer needed)");
  app.add_option("--max-new-tokens", max_new, "tokens to generate")->check(positive());
  app.add_option("--temperature", sp.temperature, "0: greedy")->check(CLI::NonNegativeNumber);
  app.add_option("--top-k", sp.top_k, "sample from the k most likely tokens (0: all)");
  app.add_option("--top-p", sp.top_p, "nucleus sampling threshold")->check(CLI::Range(0.0, 1.0));
  app.add_option("--seed", sp.seed, "sampling seed");
  int code = 0;
  if (!parse(app, argc, argv, code)) return code;
  if (int(!prompt.empty()) + int(!prompt_file.empty()) + int(!prompt_ids.empty()) != 1)
    throw UsageError("give exactly one of --prompt, --prompt-file or --prompt-ids");
  if (prompt_ids.empty() && tokenizer.empty())
    throw UsageError("--prompt / --prompt-file need --tokenizer-name-or-path (or use --prompt-ids)");

  SingleGroup tp("tp");
  std::unique_ptr<Model> model = load_model_weights(load, cpu_ops(), tp, 1, 0);
  std::unique_ptr<Tokenizer> tok;
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::string> texts;
  std::vector<PromptRecord> expected;
  Scores scores;
  if (!prompt_ids.empty()) {
    prompts.push_back(parse_ids(prompt_ids));
  } else {
    tok = std::make_unique<Tokenizer>(tokenizer);
    if (!prompt.empty()) texts.push_back(prompt);
    std::ifstream f(prompt_file);
    if (!prompt_file.empty() && !f) throw Error(fmt::format("[generate] --prompt-file {}: cannot open", prompt_file));
    int64_t lineno = 0;
    for (std::string line; !prompt_file.empty() && std::getline(f, line);) {
      ++lineno;
      if (line.empty()) continue;
      if (line[0] != '{') {
        texts.push_back(line);
        continue;
      }
      const PromptRecord r = parse_prompt_record(line, fmt::format("{}:{}", prompt_file, lineno));
      texts.push_back(r.prompt);
      expected.push_back(r);
    }
    if (!expected.empty() && expected.size() != texts.size())
      throw UsageError(fmt::format("--prompt-file {}: mixes JSON records and plain lines; use one form", prompt_file));
    for (const auto& t : texts) prompts.push_back(tok->encode(t));
  }
  const int64_t cap = model->config().max_seq_length, v = model->config().vocab_size;
  Decoder dec(*model, cpu_ops(), 1, cap);
  int64_t total_new = 0;
  double total_secs = 0;
  for (size_t pi = 0; pi < prompts.size(); ++pi) {
    std::vector<int32_t> ids = prompts[pi];
    if (ids.empty() && tok) ids.push_back(tok->bos_id() >= 0 ? tok->bos_id() : 0);
    dec.reset();
    Timer t;
    Tensor logits = dec.step(ids.data(), int64_t(ids.size()));
    std::vector<int32_t> out;
    for (int64_t i = 0; i < max_new && dec.length() < cap; ++i) {
      const int32_t next = choose_token(logits.f32(), v, sp, uint64_t(pi) << 32 | uint64_t(i));
      out.push_back(next);
      if (tok && next == tok->eos_id()) break;
      if (dec.length() < cap && i + 1 < max_new) logits = dec.step(&next, 1);
    }
    const double secs = t.seconds();
    if (!expected.empty()) {
      if (!out.empty() && out.back() == tok->eos_id()) out.pop_back();
      scores.add(expected[pi], tok->decode(out));
    } else if (tok) {
      std::printf("%s%s\n", texts[pi].c_str(), tok->decode(out).c_str());
    } else {
      std::string s;
      for (size_t i = 0; i < out.size(); ++i) s += (i ? "," : "") + std::to_string(out[i]);
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
  scores.print();
  return 0;
}

}  // namespace cs::cli
