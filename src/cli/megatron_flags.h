// Megatron-LM / AscendSpeed flags that a launch script passes and that this program answers
// without a setting of its own, so that the script runs unchanged:
//  - flags that state what Baichuan's architecture or this implementation already is (SwiGLU,
//    no biases, flash attention, fp32 gradient reduction...): accepted silently;
//  - flags with no effect here (a GPU fusion's overlap, a data-loader worker count, W&B...):
//    accepted, each named once at start-up with the reason;
//  - flags whose value must be what Baichuan is (--rotary-percent 1, --rotary-base 10000,
//    --num-query-groups = heads, --kv-channels = hidden / heads, --norm-epsilon = the model's) or
//    what this program keeps (fp32 optimizer dtypes): checked, a different value one line
//    (exit 2); --norm-epsilon sets the epsilon of a model built from flags;
//  - flags that select an architecture or a schedule this program does not build (--squared-relu,
//    --qk-layernorm, --fp8-format...): one line naming the flag (exit 2).
// docs/training.md, "Megatron-LM flags", lists them.
#pragma once
#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <vector>

#include "model/config.h"

namespace cs::cli {

class MegatronFlags {
 public:
  void add_to(CLI::App& app);
  // Refused flags and values that contradict each other or Baichuan (before the model is known).
  // position: ModelFlags' --position-embedding-type, which --use-rotary-position-embeddings sets.
  void check(const CLI::App& app, std::optional<std::string>& position) const;
  // --norm-epsilon for a model built from flags.
  void apply(ModelConfig& c) const;
  // Values that must match the model (a checkpoint's included): --kv-channels, --num-query-groups,
  // --norm-epsilon.
  // groups_from_checkpoint: --use-checkpoint-args with --load, where Megatron takes the key/value
  // groups from the checkpoint (not checked here).
  void check_model(const ModelConfig& c, bool groups_from_checkpoint = false) const;
  // --use-checkpoint-args: --load's position scheme and key/value groups win over the flags (as
  // Megatron forces them from the checkpoint's arguments; the shapes are still checked).
  bool use_checkpoint_args(const CLI::App& app) const { return app.count("--use-checkpoint-args") > 0; }
  // "accepted, no effect here: --flag (reason)" for each such flag passed.
  std::vector<std::string> notes(const CLI::App& app) const;

 private:
  struct Noted {
    std::string flag, reason;
  };
  std::vector<Noted> noted_;
  std::vector<std::string> refused_;  // flags answered with one line
  std::vector<std::string> sink_;     // values of flags without an effect
  std::optional<double> rotary_percent_, norm_epsilon_;
  std::optional<int64_t> num_query_groups_, kv_channels_;
  std::optional<std::string> data_impl_, optimizer_;
  std::vector<std::optional<std::string>> pinned_;  // the values of kPinned's flags (megatron_flags.cpp)
  bool use_rotary_ = false, group_query_attention_ = false;
};

}  // namespace cs::cli
