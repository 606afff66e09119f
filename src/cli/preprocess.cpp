// chuanspeed preprocess --input FILE[,FILE...]|DIR --output-prefix P --tokenizer-name-or-path TOK
//                       [--tokenizer-type PretrainedFromHF|SentencePiece] [--workers N]
//                       [--json-keys text ...] [--append-eod] [--handler-name plain|alpaca|conversation]
//                       [--log-interval K] [--max-record-bytes 8MiB]
//                       [--is-instruction-dataset] [--prompt-type alpaca|vicuna|baichuan]
// Megatron-LM's / AscendSpeed's tools/preprocess_data.py: a corpus into PREFIX_<key>_document.{bin,idx}.
#include <fmt/core.h>

#include <csignal>

#include "cli/commands.h"
#include "cli/parse.h"
#include "core/error.h"
#include "data/corpus/preprocess.h"
#include "train/hf_model.h"

namespace cs::cli {

namespace {
std::atomic<bool> g_stop{false};
// The first Ctrl-C / SIGTERM stops the run cleanly (the .tmp outputs removed); a second one kills.
void on_signal(int sig) {
  g_stop.store(true);
  std::signal(sig, SIG_DFL);
}

std::vector<std::string> split_commas(const std::vector<std::string>& in) {
  std::vector<std::string> out;
  for (const auto& s : in)
    for (size_t at = 0;;) {
      const size_t c = s.find(',', at);
      if (c > at && at < s.size()) out.push_back(s.substr(at, c - at));
      if (c == std::string::npos) break;
      at = c + 1;
    }
  return out;
}
}  // namespace

int preprocess_main(int argc, char** argv) {
  CLI::App app("Tokenize a corpus (Parquet, JSON, JSONL) into a Megatron .bin/.idx dataset", "preprocess");
  PreprocessOptions opt;
  std::vector<std::string> inputs;
  std::string tokenizer_type = "PretrainedFromHF", tokenizer_model, dataset_impl = "mmap";
  app.add_option("--input", inputs, "input files or directories (comma-separated or repeated)")->required();
  app.add_option("--output-prefix", opt.output_prefix, "writes PREFIX_<key>_document.bin/.idx")->required();
  app.add_option("--tokenizer-name-or-path", opt.tokenizer, "a Hugging Face tokenizer directory or a .model file");
  app.add_option("--tokenizer-model", tokenizer_model, "a SentencePiece .model file (Megatron's flag)");
  app.add_option("--tokenizer-type", tokenizer_type, "PretrainedFromHF (HuggingFaceTokenizer) or SentencePiece "
                 "(GPTSentencePieceTokenizer, Llama2Tokenizer)");
  app.add_option("--workers", opt.workers, "tokenizing threads (output bytes do not depend on it)");
  app.add_option("--log-interval", opt.log_interval, "documents between progress lines");
  app.add_option("--json-keys", opt.json_keys, "fields to tokenize with --handler-name plain (default text)");
  app.add_flag("--append-eod", opt.append_eod)->description("end every document with the EOS token");
  app.add_option("--handler-name", opt.handler, "plain, alpaca or conversation (docs/data.md)");
  app.add_flag("--is-instruction-dataset", opt.instruction)
      ->description("also write PREFIX_loss_mask_document.bin/.idx: 1 for response tokens, 0 for the prompt "
                    "(alpaca and conversation handlers)");
  app.add_option("--prompt-type", opt.prompt_type,
                 "alpaca, vicuna or baichuan (default: alpaca for --handler-name alpaca, vicuna for conversation)");
  std::string max_record = "8MiB";
  app.add_option("--max-record-bytes", max_record, "longest record (its JSON text, or a Parquet row's strings), "
                 "e.g. 8MiB or 64MB; a longer one is an error naming it (SentencePiece can need 200x a record's "
                 "size in memory); 0: no limit");
  app.add_option("--dataset-impl", dataset_impl, "Megatron's flag: mmap only")->check(CLI::IsMember({"mmap"}));
  bool ignored = false, split_sentences = false;
  app.add_flag("--tokenizer-not-use-fast,--keep-newlines", ignored)
      ->description("accepted for AscendSpeed's scripts; SentencePiece has one implementation and no sentence splitting");
  app.add_flag("--split-sentences", split_sentences)->description("not supported (Megatron splits with NLTK)");
  // Megatron's --partitions N deals the input's lines round-robin into N files, tokenizes them in
  // parallel and concatenates the results, so N > 1 reorders the documents unless
  // --keep-sequential-samples cuts contiguous parts instead (then the order is one partition's).
  // --lang only chooses --split-sentences' language.
  int64_t partitions = 1;
  bool keep_sequential = false;
  std::string lang, vocab_file, merge_file;
  app.add_option("--partitions", partitions, "1, or any with --keep-sequential-samples (the documents keep their "
                 "order; --workers tokenizes in parallel)")->check(positive());
  app.add_flag("--keep-sequential-samples", keep_sequential, "with --partitions: contiguous parts (the input order)");
  app.add_option("--lang", lang, "accepted; the language of --split-sentences, which is not supported");
  app.add_option("--vocab-file", vocab_file, "GPT-2 BPE vocabulary: not supported (Baichuan's tokenizer is SentencePiece)");
  app.add_option("--merge-file", merge_file, "GPT-2 BPE merges: not supported (Baichuan's tokenizer is SentencePiece)");
  int code = 0;
  if (!parse(app, argc, argv, code)) return code;
  if (!vocab_file.empty() || !merge_file.empty())
    throw UsageError(fmt::format("{}: GPT-2 BPE vocabularies are not supported; Baichuan's tokenizer is SentencePiece. "
                                 "Hint: pass --tokenizer-name-or-path DIR (or --tokenizer-model tokenizer.model)",
                                 vocab_file.empty() ? "--merge-file" : "--vocab-file"));
  if (partitions > 1 && !keep_sequential)
    throw UsageError(fmt::format("--partitions {}: Megatron's deals the lines round-robin into {} parts and "
                                 "concatenates them, reordering the documents; this program keeps the input order. "
                                 "Hint: --partitions 1 (--workers N tokenizes in parallel), or add "
                                 "--keep-sequential-samples for the same order", partitions, partitions));
  if (split_sentences)
    throw UsageError("--split-sentences: not supported (Megatron's uses NLTK's punkt); ChuanSpeed writes one "
                     "sequence per document. Hint: drop the flag");
  // AscendSpeed's PretrainedFromHF, newer Megatron's HuggingFaceTokenizer: a Hugging Face directory;
  // Megatron's SentencePiece names: a .model file. Baichuan's tokenizer is SentencePiece either way.
  const bool hf = tokenizer_type == "PretrainedFromHF" || tokenizer_type == "HuggingFaceTokenizer";
  if (tokenizer_type == "SentencePieceTokenizer") throw UsageError(sentencepiece_tokenizer_refusal());
  if (!hf && tokenizer_type != "SentencePiece" && tokenizer_type != "GPTSentencePieceTokenizer" &&
      tokenizer_type != "Llama2Tokenizer")
    throw UsageError(fmt::format("--tokenizer-type {}: expected PretrainedFromHF / HuggingFaceTokenizer or a "
                                 "SentencePiece type (GPTSentencePieceTokenizer, Llama2Tokenizer): Baichuan's "
                                 "tokenizer is SentencePiece", tokenizer_type));
  if (opt.tokenizer.empty()) opt.tokenizer = tokenizer_model;
  if (opt.tokenizer.empty())
    throw UsageError("--tokenizer-name-or-path: required (a Hugging Face tokenizer directory or a .model file)");
  opt.inputs = split_commas(inputs);
  opt.max_record_bytes = max_record == "0" ? 0 : parse_byte_size(max_record, "--max-record-bytes");

  opt.stop = &g_stop;
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  const PreprocessStats st = run_preprocess(opt);
  const double s = std::max(st.seconds, 1e-9);
  std::printf("preprocessed %lld documents, %lld tokens, %.2f MB in %.2f s: %.0f docs/s, %.0f tokens/s, %.2f MB/s "
              "(%d worker%s)\n",
              (long long)st.documents, (long long)st.tokens, st.input_bytes / 1e6, st.seconds, st.documents / s,
              st.tokens / s, st.input_bytes / s / 1e6, opt.workers, opt.workers == 1 ? "" : "s");
  for (const auto& p : st.output_prefixes) std::printf("wrote %s.bin and %s.idx\n", p.c_str(), p.c_str());
  return 0;
}

}  // namespace cs::cli
