// CLI11 glue shared by the subcommands: parse with one-line usage errors (exit 2), and the
// Megatron model flags that override a preset.
#pragma once
#include <CLI/CLI.hpp>
#include <optional>
#include <string>

#include "model/config.h"

namespace cs::cli {

// Parses; on --help prints help and returns 0 through `exit_code`; on a bad flag throws UsageError
// "<what>. Hint: chuanspeed <cmd> --help". Returns true when the command should run.
bool parse(CLI::App& app, int argc, char** argv, int& exit_code);

// --device cpu|cuda (default cpu): which backend the command computes on.
void add_device_option(CLI::App& app, std::string& device);
// --threads N: OpenMP threads for this process (backend/cpu/thread_count.h); apply it after parsing
// with cpu::apply_threads.
void add_threads_option(CLI::App& app, std::optional<int>& threads);

// A number > 0, with a one-line message (CLI::PositiveNumber prints DBL_MAX's 300 digits).
const CLI::Validator& positive();

// Megatron/AscendSpeed architecture flags; unset ones keep the preset's value.
struct ModelFlags {
  std::string model = "tiny";
  std::optional<int64_t> num_layers, hidden_size, ffn_hidden_size, num_heads, seq_length,
      vocab_size, max_position_embeddings;
  int64_t divisible_by = 128;
  std::optional<std::string> position, recompute, recompute_method, checkpoint_policy;
  std::optional<int64_t> recompute_num_layers, checkpoint_block_layer;
  bool recompute_activations = false;  // Megatron's --recompute-activations: selective
  bool checkpoint_activations = false;
  std::optional<double> init_std;

  void add_to(CLI::App& app);
  // The preset with overrides applied, vocab padded (Megatron: to a multiple of
  // --make-vocab-size-divisible-by x the tensor-parallel size tp), validated.
  ModelConfig resolve(int64_t tp = 1) const;
  // The run-time choices (activation recomputation) applied to a config read from a checkpoint.
  void apply_recompute(ModelConfig& c) const;
  // The architecture flags given beside --load (layers, sizes, heads, position scheme) against the
  // loaded model's config: a difference is one line (UsageError), as Megatron, which builds the
  // model from the flags, fails to load other shapes (and would train another position scheme).
  // vocab: the vocabulary the flags ask for without a tokenizer (--vocab-size, + 1 for
  // NullTokenizer): the model's must be it, or it padded to a multiple of --make-vocab-size-
  // divisible-by (x any tensor-parallel size the checkpoint was written with). use_checkpoint_args:
  // Megatron's --use-checkpoint-args, which takes the position scheme from the checkpoint (the
  // shapes still from the flags). source: where the config came from.
  void check_loaded(const ModelConfig& loaded, const std::string& source, std::optional<int64_t> vocab,
                    bool use_checkpoint_args) const;
};

// Megatron's SentencePieceTokenizer adds <CLS>, <SEP>, <EOD> and <MASK> pieces (and <PAD>, <BOS>,
// <EOS> where missing) to the model's vocabulary, its end-of-document id the new <EOD>: not
// Baichuan's tokenizer as it is. One line for train and preprocess.
std::string sentencepiece_tokenizer_refusal();

}  // namespace cs::cli
