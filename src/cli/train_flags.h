// The flags of `chuanspeed train`: Megatron/AscendSpeed names and defaults, the architecture
// flags of ModelFlags, and the launch scripts' other Megatron-LM flags (cli/megatron_flags.h).
#pragma once
#include <array>
#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cli/megatron_flags.h"
#include "cli/parse.h"
#include "train/trainer.h"

namespace cs::cli {

struct TrainFlags {
  ModelFlags model;
  MegatronFlags megatron;
  int64_t micro_batch = 1, log_interval = 100, exit_on_nan = 0;
  std::optional<int64_t> train_iters, train_samples, global_batch, lr_decay_iters, lr_warmup_iters, lr_decay_samples,
      lr_warmup_samples;
  std::vector<std::string> data_path;
  std::vector<int64_t> rampup_batch_size;  // --rampup-batch-size START INCREMENT SAMPLES
  std::array<std::vector<std::string>, 3> split_data_path;  // --train-data-path, --valid-data-path, --test-data-path
  // Megatron-core's files of data arguments (cli/data_args.h), read into the above by check_supported.
  std::optional<std::string> data_args_path, per_split_data_args_path;
  // How errors name each data source: the flag, or the file it was read from.
  std::array<std::string, 4> data_flag = {"--data-path", "--train-data-path", "--valid-data-path", "--test-data-path"};
  std::optional<std::string> load, save, log_dir, tensorboard_dir, tokenizer, tokenizer_model, tokenizer_type;
  TensorBoardTags tensorboard_tags;
  std::string dataloader_type = "single";  // --dataloader-type: single or cyclic
  bool no_data_sharding = false;           // --no-data-sharding (cyclic's order)
  std::string normalization = "RMSNorm";
  double attention_dropout = 0.0, hidden_dropout = 0.0;
  uint64_t seed = 1234;
  std::optional<double> lr, lr_warmup_fraction, static_loss_scale;
  double lr_warmup_init = 0;
  double min_lr = 0.0, weight_decay = 0.01, clip_grad = 1.0, adam_beta1 = 0.9, adam_beta2 = 0.999,
         adam_eps = 1e-8, initial_loss_scale = 4294967296.0, min_loss_scale = 1.0;
  int64_t loss_scale_window = 1000, hysteresis = 2;
  std::string lr_wsd_decay_style = "exponential";
  std::string weight_decay_incr_style = "constant";
  std::optional<double> start_weight_decay, end_weight_decay;
  std::optional<int64_t> lr_wsd_decay_iters, lr_wsd_decay_samples;
  std::string lr_decay_style = "linear", split = "969, 30, 1", data_cache_path, device = "cpu";
  int64_t eval_interval = 1000, eval_iters = 100, start_eval_at_iter = 0;
  std::optional<int64_t> eval_micro_batch, eval_global_batch;  // --eval-micro-batch-size, --eval-global-batch-size
  bool fp16 = false, bf16 = false, log_params_norm = false, log_num_zeros = false;
  std::optional<int> threads;  // --threads
  bool adaptive_threads = false;  // --adaptive-threads
  bool instruction = false, reset_attention_mask = false, reset_position_ids = false, eod_mask_loss = false;
  int64_t tp = 1, pp = 1, save_interval = 0, exit_interval = 0;
  double exit_duration_mins = 0;  // Megatron's type is int; a fraction is accepted here
  double distributed_timeout_minutes = 10;  // Megatron's default
  bool distributed_optimizer = false, deepspeed = false, sequence_parallel = false;
  std::optional<int> zero_stage;
  std::optional<int64_t> virtual_pipeline_layers;
  std::optional<int64_t> virtual_stages;  // --num-virtual-stages-per-pipeline-rank
  std::optional<int64_t> microbatch_group;  // --microbatch-group-size-per-virtual-pipeline-stage
  std::optional<std::string> deepspeed_config;
  int keep_last = 0;
  bool finetune = false, no_load_optim = false, no_load_rng = false, resume = false, start_over = false;
  std::optional<int64_t> ckpt_step;  // --ckpt-step: --load's iteration to load
  std::optional<std::string> pretrained_checkpoint;  // --pretrained-checkpoint
  // Set by resolve_pretrained when the run starts from --pretrained-checkpoint: the --load given
  // (which holds no checkpoint yet), or "" when none was.
  std::optional<std::string> own_load;
  std::string exit_signal = "SIGTERM";  // --exit-signal: a signal that saves and stops (SIGTERM, SIGINT always do)
  // --exit-signal's number.
  int exit_signal_number() const;
  bool no_save_optim = false, no_save_rng = false;
  bool skip_train = false;  // --skip-train: evaluate only
  bool calculate_per_token_loss = false;
  bool override_scheduler = false, checkpoint_scheduler = false;

  void add_to(CLI::App& app);
  // Dropout, non-RMSNorm, ZeRO-3, the Megatron-LM flags refused (cli/megatron_flags.h) and
  // contradictory flags are usage errors; --use-rotary-position-embeddings sets model.position.
  void check_supported(const CLI::App& app);
  // The tokenizer file or directory (--tokenizer-name-or-path or --tokenizer-model), if any.
  std::optional<std::string> tokenizer_path() const { return tokenizer ? tokenizer : tokenizer_model; }
  // Megatron's NullTokenizer: the vocabulary is --vocab-size + 1 (the end-of-document id).
  bool null_tokenizer() const { return tokenizer_type && *tokenizer_type == "NullTokenizer"; }
  // "accepted, no effect here: --flag (reason)" for each such flag the user passed, and notes on
  // what a flag means on this device.
  std::vector<std::string> ignored_notes(const CLI::App& app) const;
  // The run's iterations for global batch gb (--train-iters, or --train-samples' whole batches, or
  // those of --rampup-batch-size, which it returns too); UsageError for a length flag missing or wrong.
  std::pair<int64_t, BatchRampup> run_length(int64_t gb) const;
  // Megatron's --pretrained-checkpoint: when --load holds no native checkpoint (or is not given),
  // the run fine-tunes from that one instead (its weights, from iteration 0; a Hugging Face
  // directory too), so that one launch script starts a run and resumes it. Returns the line that
  // says so, or "" when --load's own checkpoint is used.
  std::string resolve_pretrained();
  // The iteration of --load's native checkpoint to load: --ckpt-step, or -1 (the latest; always
  // under --resume, which continues the run).
  int64_t load_step() const { return resume || !ckpt_step ? -1 : *ckpt_step; }
  // --num-virtual-stages-per-pipeline-rank V as the layers per virtual stage (num_layers / (PP x V),
  // into virtual_pipeline_layers); a UsageError when they do not divide or both flags are given.
  void resolve_virtual_stages(int64_t num_layers);
  // The schedule's flags (--min-lr, --lr-decay-*, --lr-warmup-*, --lr-wsd-*, the weight decay's).
  void add_schedule_options(CLI::App& app);
  // The lr and weight-decay schedule of a run of global batch gb (its length in a.train_iters) into
  // a (schedule_flags.cpp); UsageError for flags that mix iterations and samples or that Megatron's
  // scheduler refuses.
  void schedule_args(TrainArgs& a, int64_t gb) const;
  // The trainer's arguments for a model of config c.
  TrainArgs train_args(const ModelConfig& c) const;
};

}  // namespace cs::cli
