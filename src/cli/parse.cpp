#include "cli/parse.h"

#include <fmt/core.h>

#include <algorithm>
#include <cctype>
#include <vector>

#include "core/error.h"

namespace cs::cli {

const CLI::Validator& positive() {
  static const CLI::Validator v(
      [](std::string& in) -> std::string {
        try {
          size_t used = 0;
          const double d = std::stod(in, &used);
          if (used == in.size() && d > 0) return "";
        } catch (const std::exception&) {
        }
        return "expected a number greater than 0, got '" + in + "'";
      },
      "POSITIVE");
  return v;
}

namespace {
// Edit distance (insertions, deletions, substitutions) between two flag names.
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// " Did you mean --x?" for the command's flag nearest to an unknown one (Megatron spells flags
// with dashes: --data_path is --data-path), or "" when none is close.
std::string suggestion(const CLI::App& app, const std::string& flag) {
  std::string dashed = flag;
  for (size_t i = 2; i < dashed.size(); ++i)
    if (dashed[i] == '_') dashed[i] = '-';
  std::string best;
  size_t best_d = std::max<size_t>(2, flag.size() / 4) + 1;
  for (const CLI::Option* o : app.get_options()) {
    for (const std::string& name : o->get_lnames()) {
      const std::string full = "--" + name;
      const size_t d = full == dashed ? 0 : edit_distance(flag, full);
      if (d < best_d) {
        best_d = d;
        best = full;
      }
    }
  }
  return best.empty() ? "" : fmt::format(" Did you mean {}?", best);
}
}  // namespace

bool parse(CLI::App& app, int argc, char** argv, int& exit_code) {
  app.set_version_flag("--version", std::string("chuanspeed ") + CS_VERSION, "print the version and exit");
  // --help shows each flag's default (the value its variable holds before parsing).
  for (CLI::Option* o : app.get_options())
    if (o->get_items_expected_max() >= 1) o->capture_default_str();
  // Unknown flags first: CLI11 would report a missing required flag before an unexpected one,
  // and the flag the user mistyped is the more useful message.
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.size() < 2 || a[0] != '-' || a == "--") continue;
    if (a.find('=') != std::string::npos) a = a.substr(0, a.find('='));
    if (a == "-h" || a == "--help") continue;
    if (a.size() > 1 && (std::isdigit(static_cast<unsigned char>(a[1])) || a[1] == '.')) continue;  // -1
    if (!app.get_option_no_throw(a))
      throw UsageError(fmt::format("unknown flag {}.{} Hint: chuanspeed {} --help lists the flags", a,
                                   suggestion(app, a), app.get_name()));
  }
  // A flag given twice keeps its last value, as Megatron's argparse does: flags appended to a
  // launch script override the script's own.
  for (CLI::Option* o : app.get_options())
    if (o->get_items_expected_max() <= 1 && o->get_multi_option_policy() == CLI::MultiOptionPolicy::Throw)
      o->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::fputs(app.help().c_str(), stdout);
    exit_code = 0;
    return false;
  } catch (const CLI::CallForVersion& v) {
    std::printf("%s\n", v.what());
    exit_code = 0;
    return false;
  } catch (const CLI::ParseError& e) {
    std::string what = e.what();
    while (!what.empty() && what.back() == '\n') what.pop_back();
    throw UsageError(fmt::format("{}. Hint: chuanspeed {} --help lists the flags", what, app.get_name()));
  }
  return true;
}

void ModelFlags::add_to(CLI::App& app) {
  app.add_option("--model", model, "architecture preset: baichuan-7b, baichuan-13b, small, demo, tiny");
  app.add_option("--num-layers,--encoder-num-layers", num_layers, "decoder layers (L; Megatron's other name too)");
  app.add_option("--hidden-size", hidden_size, "hidden size (D)");
  app.add_option("--ffn-hidden-size", ffn_hidden_size, "MLP size (F)");
  app.add_option("--num-attention-heads", num_heads, "attention heads (H)");
  app.add_option("--seq-length,--encoder-seq-length", seq_length, "sequence length (Megatron's other name too)");
  app.add_option("--max-position-embeddings", max_position_embeddings, "longest position (defaults to --seq-length)");
  app.add_option("--vocab-size", vocab_size, "vocabulary size before padding");
  app.add_option("--make-vocab-size-divisible-by", divisible_by, "pad the vocabulary to a multiple of this")
      ->check(positive());
  app.add_option("--position-embedding-type", position, "rope or alibi")
      ->check(CLI::IsMember({"rope", "alibi"}));
  app.add_option("--recompute-granularity", recompute,
                 "full: recompute each block in backward; selective (Megatron's core-attention recomputation): "
                 "nothing to recompute, flash attention keeps no attention scores")
      ->check(CLI::IsMember({"full", "selective"}));
  app.add_flag("--recompute-activations", recompute_activations, "--recompute-granularity selective (Megatron's)");
  app.add_option("--recompute-method", recompute_method,
                 "uniform: every layer; block: only the first --recompute-num-layers of each stage")
      ->check(CLI::IsMember({"uniform", "block"}));
  app.add_option("--recompute-num-layers", recompute_num_layers, "layers recomputed with --recompute-method block")
      ->check(CLI::NonNegativeNumber);
  // AscendSpeed's (older Megatron's) spellings of the same: --checkpoint-activations is
  // --recompute-granularity full; --checkpoint-policy block --checkpoint_block_layer N recomputes
  // the first N layers.
  app.add_flag("--checkpoint-activations", checkpoint_activations, "recompute each block in backward (older name)");
  app.add_option("--checkpoint-policy", checkpoint_policy, "full or block (with --checkpoint_block_layer)")
      ->check(CLI::IsMember({"full", "block"}));
  app.add_option("--checkpoint_block_layer,--checkpoint-block-layer", checkpoint_block_layer,
                 "layers recomputed with --checkpoint-policy block")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--init-method-std", init_std, "std of the normal init");
}

ModelConfig ModelFlags::resolve(int64_t tp) const {
  ModelConfig c = model_preset(model);
  if (num_layers) c.num_layers = *num_layers;
  if (hidden_size) c.hidden_size = *hidden_size;
  if (ffn_hidden_size) c.ffn_hidden_size = *ffn_hidden_size;
  if (num_heads) c.num_heads = *num_heads;
  if (seq_length) c.max_seq_length = *seq_length;
  if (max_position_embeddings) c.max_seq_length = std::max(c.max_seq_length, *max_position_embeddings);
  if (vocab_size) c.vocab_size = padded_vocab_size(*vocab_size, divisible_by, tp);
  if (position) c.position = *position == "alibi" ? PositionType::Alibi : PositionType::Rope;
  apply_recompute(c);
  if (init_std) c.init_std = *init_std;
  c.validate();
  return c;
}

void ModelFlags::check_loaded(const ModelConfig& c, const std::string& source, std::optional<int64_t> vocab,
                              bool use_checkpoint_args) const {
  auto same = [&](const char* flag, const std::optional<int64_t>& v, int64_t model, const char* what) {
    if (v && *v != model)
      throw UsageError(fmt::format("{} {}: the model loaded from {} has {} {}. Hint: leave the architecture flags out "
                                   "with --load, or give the model's",
                                   flag, *v, source, model, what));
  };
  same("--num-layers", num_layers, c.num_layers, "layers");
  same("--hidden-size", hidden_size, c.hidden_size, "as its hidden size");
  same("--ffn-hidden-size", ffn_hidden_size, c.ffn_hidden_size, "as its MLP size");
  same("--num-attention-heads", num_heads, c.num_heads, "attention heads");
  // A Hugging Face config may hold the vocabulary unpadded; a checkpoint holds it padded for the
  // tensor-parallel size that wrote it (Megatron's padding to divisible-by x TP).
  auto padded_for_some_tp = [&] {
    for (int64_t t = 1; t <= 1024; t *= 2)
      if (padded_vocab_size(*vocab, divisible_by, t) == c.vocab_size) return true;
    return false;
  };
  if (vocab && c.vocab_size != *vocab && !padded_for_some_tp())
    throw UsageError(fmt::format("--vocab-size {}: the model loaded from {} has {} vocabulary entries, expected {} or "
                                 "it padded to a multiple of --make-vocab-size-divisible-by {} (x the tensor-parallel "
                                 "size). Hint: leave --vocab-size out with --load, or give the model's",
                                 vocab_size.value_or(*vocab), source, c.vocab_size, *vocab, divisible_by));
  const char* scheme = c.position == PositionType::Alibi ? "alibi" : "rope";
  if (position && *position != scheme && !use_checkpoint_args)
    throw UsageError(fmt::format("--position-embedding-type {} (or --use-rotary-position-embeddings): the model loaded "
                                 "from {} uses {} positions. Hint: leave the flag out with --load, or pass {}",
                                 *position, source, scheme, scheme));
}

void ModelFlags::apply_recompute(ModelConfig& c) const {
  // Megatron's selective recomputation recomputes the attention core (its score matrices) only;
  // the flash attention here never stores them, so it keeps nothing less and recomputes nothing.
  const bool selective = recompute_activations || (recompute && *recompute == "selective");
  if (selective && recompute_method)  // Megatron asserts it too
    throw UsageError(fmt::format("--recompute-method {} with selective recomputation: the method chooses the layers "
                                 "of --recompute-granularity full. Hint: use full, or leave --recompute-method out",
                                 *recompute_method));
  if (selective && recompute && *recompute == "full")
    throw UsageError("--recompute-activations with --recompute-granularity full: expected one granularity");
  if ((recompute && *recompute == "full") || checkpoint_activations) c.recompute = true;
  const bool block = (recompute_method && *recompute_method == "block") ||
                     (checkpoint_policy && *checkpoint_policy == "block");
  const std::optional<int64_t> n = recompute_num_layers ? recompute_num_layers : checkpoint_block_layer;
  if (block && !n)
    throw UsageError("--recompute-method block / --checkpoint-policy block need the number of layers: "
                     "--recompute-num-layers N (or --checkpoint_block_layer N)");
  if (block) {
    c.recompute = true;
    c.recompute_num_layers = *n;
  }
}

void add_threads_option(CLI::App& app, std::optional<int>& threads) {
  app.add_option("--threads", threads,
                 "OpenMP threads of this process (default: OMP_NUM_THREADS when set, else the cores it may use "
                 "divided by the ranks on its node)")
      ->check(CLI::Range(1, 4096));
}

void add_device_option(CLI::App& app, std::string& device) {
  // Checked when the backend is made (backend/registry.cpp), so a build without CUDA can say so.
  app.add_option("--device", device, "where to compute: cpu (default) or cuda");
}

std::string sentencepiece_tokenizer_refusal() {
  return "--tokenizer-type SentencePieceTokenizer: Megatron's adds <CLS>, <SEP>, <EOD> and <MASK> pieces to the "
         "vocabulary and ends documents with its new <EOD>, which this program does not. Hint: "
         "GPTSentencePieceTokenizer or Llama2Tokenizer (the model's pieces as they are), or PretrainedFromHF";
}

}  // namespace cs::cli
