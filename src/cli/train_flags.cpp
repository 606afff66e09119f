#include "cli/train_flags.h"

#include <fmt/core.h>

#include <csignal>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "core/checked.h"
#include "checkpoint/megatron.h"
#include "checkpoint/native.h"
#include "cli/data_args.h"
#include "core/error.h"
#include "data/blended_dataset.h"

namespace cs::cli {

namespace {
// The signals --exit-signal takes (Megatron's takes any signal.Signals name; these are the ones a
// scheduler or a user sends to stop a job).
constexpr std::pair<const char*, int> kExitSignals[] = {{"SIGTERM", SIGTERM}, {"SIGINT", SIGINT},   {"SIGUSR1", SIGUSR1},
                                                        {"SIGUSR2", SIGUSR2}, {"SIGHUP", SIGHUP},   {"SIGQUIT", SIGQUIT},
                                                        {"SIGALRM", SIGALRM}, {"SIGXCPU", SIGXCPU}};
std::vector<std::string> exit_signal_names() {
  std::vector<std::string> names;
  for (const auto& s : kExitSignals) names.push_back(s.first);
  return names;
}
}  // namespace

void TrainFlags::add_to(CLI::App& app) {
  model.add_to(app);
  add_device_option(app, device);
  add_threads_option(app, threads);
  app.add_flag("--adaptive-threads", adaptive_threads,
               "adapt the OpenMP thread count to the cores this run gets: fewer while other processes share "
               "them, back up when they leave (the last bits of the results then depend on the counts: "
               "OpenBLAS splits long sums by thread count)");
  app.add_option("--micro-batch-size", micro_batch, "samples per forward pass")->check(positive());
  app.add_option("--global-batch-size", global_batch, "samples per optimizer step (gradient accumulation)");
  CLI::Option* iters = app.add_option("--train-iters", train_iters, "optimizer steps");
  app.add_option("--train-samples", train_samples, "samples to train on (instead of --train-iters): "
                 "--train-samples / --global-batch-size steps, the lr schedule counted in samples")
      ->check(positive())->excludes(iters);
  app.add_option("--rampup-batch-size", rampup_batch_size,
                 "START INCREMENT SAMPLES: with --train-samples, the global batch grows from START by INCREMENT "
                 "over the first SAMPLES samples, then is --global-batch-size")
      ->expected(3);
  app.add_option("--data-path", data_path, "PREFIX, or weighted W1 PREFIX1 W2 PREFIX2 ... (blending), cut by --split");
  app.add_option("--split", split, "train,valid,test document proportions (Megatron's default 969, 30, 1)");
  app.add_option("--train-data-path", split_data_path[0],
                 "instead of --data-path: the train split's own PREFIX or W1 PREFIX1 ... (all its documents)");
  app.add_option("--valid-data-path", split_data_path[1], "with --train-data-path: the validation split's own data");
  app.add_option("--test-data-path", split_data_path[2], "with --train-data-path: the test split's own data");
  app.add_option("--data-args-path", data_args_path, "a file holding --data-path's value (for long blends)");
  app.add_option("--per-split-data-args-path", per_split_data_args_path,
                 "a JSON file {\"train\": ..., \"valid\": ..., \"test\": ...} holding the per-split data paths");
  app.add_flag("--is-instruction-dataset", instruction,
               "--data-path is PREFIX_text_document of an instruction dataset (preprocess --is-instruction-dataset): "
               "the loss counts the response tokens only, averaged over the global batch");
  app.add_flag("--reset-attention-mask", reset_attention_mask,
               "tokens attend within their own document only (after each end-of-document token a new one starts); "
               "with --is-instruction-dataset: pack several samples into each sequence, each attending to itself only");
  app.add_flag("--reset-position-ids", reset_position_ids,
               "positions restart at 0 after each end-of-document token (with --is-instruction-dataset: "
               "in each packed sample)");
  app.add_flag("--calculate-per-token-loss", calculate_per_token_loss,
               "the global batch's loss is its token losses summed over its counted targets (Megatron's), not the "
               "mean of its micro-batches' means (they differ when micro-batches count different targets, e.g. "
               "with --eod-mask-loss); instruction data is always averaged so");
  app.add_flag("--eod-mask-loss", eod_mask_loss, "leave out of the loss the target predicted from an end-of-document token");
  app.add_option("--dataloader-type", dataloader_type,
                 "single: the samples in order (Megatron's default); cyclic: each epoch of the data in a new random "
                 "order (Megatron's MegatronPretrainingRandomSampler), each data-parallel rank shuffling its own shard");
  app.add_flag("--no-data-sharding", no_data_sharding,
               "with --dataloader-type cyclic: shuffle each epoch as a whole, the ranks taking turns through it");
  app.add_option("--data-cache-path", data_cache_path, "where the sample index files go (default: beside the data)");
  app.add_option("--eval-interval", eval_interval, "iterations between validations");
  app.add_option("--start-eval-at-iter", start_eval_at_iter, "no validation before this iteration (Megatron's)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--eval-micro-batch-size", eval_micro_batch,
                 "samples per forward pass of the validation and test evaluations (default --micro-batch-size; "
                 "at most that)")->check(positive());
  app.add_option("--eval-global-batch-size", eval_global_batch,
                 "samples per evaluation step, --eval-iters of them per evaluation (default --global-batch-size)")
      ->check(positive());
  app.add_option("--eval-iters", eval_iters, "global batches per validation (0: none)");
  // The last --load wins: `pulse --restart` appends the run's own directory to a command (a seed
  // script) that already loads the starting weights.
  app.add_option("--load", load,
                 "a Hugging Face directory or a Megatron-LM checkpoint to start from, or a native checkpoint to resume")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--save", save, "output directory (metrics.jsonl, weights)");
  app.add_option("--log-dir", log_dir, "where metrics.jsonl goes (default: --save)");
  app.add_option("--tensorboard-dir", tensorboard_dir, "write TensorBoard event files here");
  app.add_flag("!--no-log-learnig-rate-to-tensorboard", tensorboard_tags.learning_rate,
               "no learning-rate scalar in TensorBoard (Megatron's spelling)");
  app.add_flag("!--no-log-loss-scale-to-tensorboard", tensorboard_tags.loss_scale,
               "no loss-scale scalar in TensorBoard");
  app.add_flag("!--no-log-gradient-norm-to-tensorboard", tensorboard_tags.grad_norm,
               "no grad-norm scalar in TensorBoard");
  app.add_flag("--log-world-size-to-tensorboard", tensorboard_tags.world_size, "a world-size scalar in TensorBoard");
  app.add_option("--tokenizer-name-or-path", tokenizer, "Hugging Face tokenizer dir or SentencePiece .model");
  app.add_option("--seed", seed, "random seed (init and data)");
  app.add_option("--log-interval", log_interval, "iterations per log line")->check(positive());
  app.add_flag("--log-params-norm", log_params_norm, "add the parameters' L2 norm to the log line (params norm: X |)");
  app.add_flag("--log-num-zeros-in-grad", log_num_zeros,
               "add the logged iteration's count of zero gradients to the log line (num zeros: X |)");
  app.add_option("--exit-on-nan", exit_on_nan, "stop after N non-finite iterations in a row");
  app.add_option("--lr", lr, "peak learning rate (required, except with --skip-train)");
  app.add_flag("--skip-train", skip_train,
               "evaluate the model (--load's, or a new one) on the validation and test splits, --eval-iters global "
               "batches each from their first samples, and exit: no training, nothing written (Megatron's)");
  add_schedule_options(app);
  app.add_option("--clip-grad", clip_grad, "clip gradients to this global norm (0: off)");
  app.add_option("--adam-beta1", adam_beta1, "Adam beta1");
  app.add_option("--adam-beta2", adam_beta2, "Adam beta2");
  app.add_option("--adam-eps", adam_eps, "Adam epsilon");
  app.add_option("--initial-loss-scale", initial_loss_scale, "fp16 dynamic loss scale: start");
  app.add_option("--loss-scale", static_loss_scale, "fp16: a constant loss scale instead of the dynamic one "
                 "(an overflowing step is still skipped)")->check(CLI::PositiveNumber);
  app.add_option("--min-loss-scale", min_loss_scale, "fp16 dynamic loss scale: floor");
  app.add_option("--loss-scale-window", loss_scale_window, "clean steps before the scale doubles");
  app.add_option("--hysteresis", hysteresis, "overflows before the scale halves");
  app.add_flag("--fp16", fp16, "fp16 mixed precision (CPU: the fp32 path with dynamic loss scaling)");
  app.add_flag("--bf16", bf16, "bf16 mixed precision: bf16 parameters and GEMMs, fp32 master weights and gradients");
  app.add_option("--tokenizer-model", tokenizer_model, "SentencePiece tokenizer.model (Megatron's Llama2Tokenizer)");
  app.add_option("--tokenizer-type", tokenizer_type, "PretrainedFromHF (HuggingFaceTokenizer), SentencePiece "
                 "(GPTSentencePieceTokenizer, Llama2Tokenizer) or NullTokenizer")
      ->check(CLI::IsMember({"PretrainedFromHF", "HuggingFaceTokenizer", "SentencePiece", "SentencePieceTokenizer",
                             "Llama2Tokenizer", "GPTSentencePieceTokenizer", "NullTokenizer"}));
  app.add_option("--normalization", normalization, "RMSNorm (Baichuan's; the only one)");
  app.add_option("--attention-dropout", attention_dropout, "attention dropout (0 only, as AscendSpeed's Baichuan scripts use)");
  app.add_option("--hidden-dropout", hidden_dropout, "hidden dropout (0 only, as AscendSpeed's Baichuan scripts use)");
  megatron.add_to(app);  // the launch scripts' other Megatron-LM flags (cli/megatron_flags.h)
  app.add_option("--save-interval", save_interval, "iterations between checkpoints (also at the end and on SIGTERM)");
  app.add_option("--exit-interval", exit_interval, "save and exit when the iteration is a multiple of this");
  app.add_option("--exit-duration-in-mins", exit_duration_mins,
                 "save and exit after the first iteration that ends this many minutes into training (exit 0; "
                 "a Slurm job's time limit)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--keep-last", keep_last, "keep only the newest N checkpoints (0: all)");
  app.add_flag("--finetune", finetune, "--load weights only; start at iteration 0");
  app.add_flag("--no-load-optim", no_load_optim,
               "--load without the optimizer state: Adam, the lr scheduler and the loss scaler start afresh");
  app.add_flag("--override-opt_param-scheduler,--override-opt-param-scheduler", override_scheduler,
               "a resumed run whose lr / weight-decay settings differ from its checkpoint's trains with this "
               "command line's (without it or the next flag such a resume is refused)");
  app.add_flag("--use-checkpoint-opt_param-scheduler,--use-checkpoint-opt-param-scheduler", checkpoint_scheduler,
               "a resumed run trains with its checkpoint's lr / weight-decay settings");
  app.add_flag("--no-load-rng", no_load_rng, "--load without the RNG state (the seed comes from --seed)");
  app.add_flag("--no-save-optim", no_save_optim,
               "checkpoints without the optimizer state, learning-rate schedule and loss scale (a third of the size "
               "in fp32); loading one needs --no-load-optim or --finetune");
  app.add_flag("--no-save-rng", no_save_rng, "checkpoints without the RNG state (the seed: a resume takes --seed)");
  app.add_option("--pretrained-checkpoint", pretrained_checkpoint,
                 "when --load holds no checkpoint yet (or is not given): fine-tune from this one (a native checkpoint "
                 "or a Hugging Face directory; its weights, from iteration 0)");
  app.add_option("--exit-signal", exit_signal,
                 "a signal that, as SIGTERM and SIGINT, finishes the step, saves and exits 0 (Megatron's; e.g. "
                 "SIGUSR1 for a scheduler's warning before its time limit)")
      ->check(CLI::IsMember(exit_signal_names()));
  app.add_option("--ckpt-step", ckpt_step, "load this iteration of --load's native checkpoint instead of its latest")
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--resume", resume,
               "continue this run from --load's native checkpoint with its whole state, overriding --finetune, "
               "--no-load-optim, --no-load-rng and --ckpt-step (which are for the first start; pulse --restart "
               "adds it)");
  app.add_flag("--start-over", start_over,
               "a new run into a --save folder that holds another run: move that run's files into "
               "SAVE/previous-<time>/ first (without it such a start is refused)");
  app.add_option("--tensor-model-parallel-size", tp, "tensor-parallel degree");
  app.add_option("--pipeline-model-parallel-size", pp, "pipeline-parallel degree");
  CLI::Option* per_stage = app.add_option("--num-layers-per-virtual-pipeline-stage", virtual_pipeline_layers,
                 "Megatron's interleaved 1F1B schedule: each pipeline rank holds num-layers / (PP x N) model chunks of N "
                 "layers");
  app.add_option("--microbatch-group-size-per-virtual-pipeline-stage", microbatch_group,
                 "the interleaved schedule's micro-batch groups: --pipeline-model-parallel-size (Megatron's default), "
                 "the only size built")->check(positive());
  app.add_option("--num-virtual-stages-per-pipeline-rank", virtual_stages,
                 "the interleaved 1F1B schedule by its chunks: each pipeline rank holds V model chunks of "
                 "num-layers / (PP x V) layers")
      ->check(positive())->excludes(per_stage);
  app.add_flag("--sequence-parallel", sequence_parallel,
               "with tensor parallelism: norms and the residual stream on a slice of the sequence per rank");
  app.add_flag("--use-distributed-optimizer", distributed_optimizer,
               "shard the fp32 master weights and Adam moments over the data-parallel ranks (Megatron's)");
  app.add_option("--zero-stage", zero_stage, "DeepSpeed ZeRO stage: 1 or 2 shard the optimizer state (as "
                 "--use-distributed-optimizer), 0 does not")->check(CLI::Range(0, 3));
  app.add_flag("--deepspeed", deepspeed, "AscendSpeed's DeepSpeed launch: read --deepspeed_config");
  app.add_option("--deepspeed_config,--deepspeed-config", deepspeed_config,
                 "ds_config.json: zero_optimization.stage, the optimizer's betas / eps / weight decay, fp16 loss "
                 "scaling, batch sizes (docs/training.md)");
  app.add_option("--distributed-timeout-minutes", distributed_timeout_minutes,
                 "how long a rank waits in a collective before the job aborts (a dead or stuck rank)")
      ->check(positive());
}

void TrainFlags::check_supported(const CLI::App& app) {
  megatron.check(app, model.position);
  auto split_paths = [&] {
    return !split_data_path[0].empty() || !split_data_path[1].empty() || !split_data_path[2].empty();
  };
  // Megatron-core's data argument files stand for the data flags (it asserts one source).
  if (data_args_path || per_split_data_args_path) {
    const char* file_flag = data_args_path ? "--data-args-path" : "--per-split-data-args-path";
    if (data_args_path && per_split_data_args_path)
      throw UsageError("--data-args-path with --per-split-data-args-path: one data source. Hint: keep one of the two");
    if (!data_path.empty() || split_paths())
      throw UsageError(fmt::format("{} with {}: one data source. Hint: keep one of the two", file_flag,
                                   !data_path.empty() ? "--data-path" : "--train-data-path / --valid-data-path / "
                                                                        "--test-data-path"));
    if (data_args_path) {
      data_path = read_data_args(*data_args_path);
      data_flag[0] = "--data-args-path " + *data_args_path;
    } else {
      split_data_path = read_per_split_data_args(*per_split_data_args_path);
      static const char* kKeys[] = {"train", "valid", "test"};
      for (size_t i = 0; i < 3; ++i)
        data_flag[i + 1] = fmt::format("--per-split-data-args-path {} ({})", *per_split_data_args_path, kKeys[i]);
    }
  }
  // Megatron-core's blend_per_split: each split its own data, all of it; not with --data-path or
  // --split (Megatron asserts both). Errors name where the split paths came from.
  if (split_paths() || per_split_data_args_path) {
    if (!data_path.empty())
      throw UsageError("--data-path with --train-data-path / --valid-data-path / --test-data-path: one or the other. "
                       "Hint: --data-path (cut by --split), or each split's own data");
    if (split_data_path[0].empty())
      throw UsageError(per_split_data_args_path
                           ? fmt::format("--per-split-data-args-path {}: \"train\" holds no data; expected the "
                                         "train split's prefix (or weighted prefixes)", *per_split_data_args_path)
                           : std::string("--valid-data-path / --test-data-path without --train-data-path. Hint: give "
                                         "the train split's data too"));
    if (app.count("--split") > 0)
      throw UsageError(fmt::format("--split with {}: each split has its own data, used whole. Hint: leave --split out",
                                   per_split_data_args_path ? "--per-split-data-args-path" : "--train-data-path"));
  }
  if (tokenizer_type && *tokenizer_type == "SentencePieceTokenizer") throw UsageError(sentencepiece_tokenizer_refusal());
  if (dataloader_type == "external")
    throw UsageError("--dataloader-type external: Megatron then takes a data loader object from the Python script that "
                     "calls it, which a command line cannot give. Hint: single (the samples in order) or cyclic");
  if (dataloader_type != "single" && dataloader_type != "cyclic")
    throw UsageError(fmt::format("--dataloader-type {}: expected single or cyclic", dataloader_type));
  // Megatron's check stops the run at the first NaN loss or gradient.
  if (app.count("--check-for-nan-in-loss-and-grad") > 0 && exit_on_nan == 0) exit_on_nan = 1;
  if (normalization != "RMSNorm")
    throw UsageError(fmt::format("--normalization {}: Baichuan uses RMSNorm, the only one supported", normalization));
  if (attention_dropout != 0.0 || hidden_dropout != 0.0)
    throw UsageError(fmt::format("--attention-dropout {} / --hidden-dropout {}: only 0 is supported "
                                 "(Baichuan pretraining uses none)", attention_dropout, hidden_dropout));
  if (instruction && reset_attention_mask != reset_position_ids)
    throw UsageError(fmt::format("{} without {}: with --is-instruction-dataset they pack samples, which restart both "
                                 "their attention and their positions. Hint: pass both flags (packing) or neither",
                                 reset_attention_mask ? "--reset-attention-mask" : "--reset-position-ids",
                                 reset_attention_mask ? "--reset-position-ids" : "--reset-attention-mask"));
  if (zero_stage && *zero_stage == 3)
    throw UsageError("--zero-stage 3: ZeRO stage 3 also shards the parameters, which this program does not do; "
                     "expected 0, 1 or 2");
  if (microbatch_group && *microbatch_group != pp)
    throw UsageError(fmt::format("--microbatch-group-size-per-virtual-pipeline-stage {}: the interleaved schedule runs "
                                 "its micro-batches in groups of --pipeline-model-parallel-size ({}), Megatron's "
                                 "default; expected {}. Hint: leave the flag out", *microbatch_group, pp, pp));
  if (deepspeed && !deepspeed_config)
    throw UsageError("--deepspeed needs --deepspeed_config FILE (the ds_config.json of the launch script)");
}

int TrainFlags::exit_signal_number() const {
  for (const auto& [name, number] : kExitSignals)
    if (exit_signal == name) return number;
  std::string names;
  for (const std::string& n : exit_signal_names()) names += (names.empty() ? "" : ", ") + n;
  throw UsageError(fmt::format("--exit-signal {}: expected one of {}", exit_signal, names));
}

std::string TrainFlags::resolve_pretrained() {
  // A checkpoint in --load (native, or Megatron-LM's) is loaded as --load; BASE only starts a run.
  if (!pretrained_checkpoint || (load && (is_native_checkpoint(*load) || is_megatron_checkpoint(*load)))) return "";
  const std::string note = fmt::format("{}: fine-tuning from --pretrained-checkpoint {} (its weights, from iteration 0)",
                                       load ? "no checkpoint in --load " + *load : std::string("no --load"),
                                       *pretrained_checkpoint);
  own_load = load.value_or("");
  load = pretrained_checkpoint;
  finetune = true;
  resume = false;  // (pulse's --resume continues a run's own checkpoint; there is none yet)
  return note;
}

void TrainFlags::resolve_virtual_stages(int64_t num_layers) {
  if (!virtual_stages) return;
  if (num_layers % (pp * *virtual_stages) != 0)
    throw UsageError(fmt::format("--num-virtual-stages-per-pipeline-rank {}: the {} layers do not split into {} x {} "
                                 "(--pipeline-model-parallel-size x virtual stages) equal chunks", *virtual_stages,
                                 num_layers, pp, *virtual_stages));
  // One virtual stage per rank is the plain 1F1B schedule, as in Megatron.
  virtual_pipeline_layers = *virtual_stages > 1 ? std::optional<int64_t>(num_layers / (pp * *virtual_stages))
                                                : std::nullopt;
}

std::vector<std::string> TrainFlags::ignored_notes(const CLI::App& app) const {
  std::vector<std::string> notes = megatron.notes(app);
  if (model.recompute_activations || (model.recompute && *model.recompute == "selective"))
    notes.push_back(fmt::format("accepted, no effect here: {} (selective recomputation recomputes the attention "
                                "scores, which flash attention never stores; --recompute-granularity full trades "
                                "compute for memory)", model.recompute_activations ? "--recompute-activations"
                                                                                   : "--recompute-granularity selective"));
  if (no_data_sharding && dataloader_type == "single")
    notes.push_back("accepted, no effect here: --no-data-sharding (it changes the order of --dataloader-type cyclic "
                    "only, as in Megatron)");
  if (fp16)
    notes.push_back("--fp16: on CPU this selects the fp32 path with dynamic loss scaling (use --bf16 for "
                    "half-precision GEMMs on the CPU)");
  return notes;
}

std::pair<int64_t, BatchRampup> TrainFlags::run_length(int64_t gb) const {
  if (!rampup_batch_size.empty()) {
    if (!train_samples)  // Megatron asserts it too
      throw UsageError(fmt::format("--rampup-batch-size{}: the batch ramps up over samples, which needs --train-samples "
                                   "(and --lr-decay-samples / --lr-warmup-samples for the schedule) instead of "
                                   "--train-iters", train_iters ? " with --train-iters" : ""));
    const BatchRampup ramp{rampup_batch_size[0], rampup_batch_size[1], rampup_batch_size[2]};
    if (!ramp.on())  // all 0 would read as no rampup: Megatron asserts a start batch above 0
      throw UsageError("--rampup-batch-size 0 0 0: expected a start batch, an increment and a number of samples, "
                       "each at least 1");
    ramp.check(gb);
    return {ramp.train_iterations(*train_samples, gb), ramp};
  }
  if (train_samples) {  // Megatron: the iterations are the whole global batches in the samples
    if (*train_samples < gb)
      throw UsageError(fmt::format("--train-samples {}: less than one global batch of {}", *train_samples, gb));
    return {*train_samples / gb, {}};
  }
  if (!train_iters) {
    if (skip_train) return {0, {}};  // (the evaluations' sizes do not depend on it then)
    throw UsageError("--train-iters or --train-samples: one is required (how long to train)");
  }
  return {*train_iters, {}};
}

TrainArgs TrainFlags::train_args(const ModelConfig& c) const {
  TrainArgs a;
  a.micro_batch = micro_batch;
  a.global_batch = global_batch.value_or(micro_batch);
  const int64_t gb = global_batch.value_or(micro_batch);
  std::tie(a.train_iters, a.rampup) = run_length(gb);
  a.seq_length = model.seq_length.value_or(c.max_seq_length);
  if (data_path.empty() && split_data_path[0].empty())
    throw UsageError("--data-path is required (or --train-data-path, with --valid-data-path / --test-data-path for "
                     "the other splits, or a file of them: --data-args-path, --per-split-data-args-path)");
  a.data_path = data_path;
  a.split_data_path = split_data_path;
  // The data flags' values are checked here, on every rank alike (the datasets are opened by rank
  // 0 first, while the others wait for it).
  for (size_t i = 0; i < 4; ++i) {
    const std::vector<std::string>& v = i == 0 ? data_path : split_data_path[i - 1];
    if (v.empty()) continue;
    const DataBlend b = parse_data_path(v, data_flag[i].c_str());
    if (instruction && (b.prefixes.size() != 1 || b.weighted))
      throw UsageError(fmt::format("{}: --is-instruction-dataset takes one PREFIX_text_document (no weights). Hint: "
                                   "preprocess the instruction corpora together into one dataset", data_flag[i].c_str()));
  }
  a.split = split;
  a.dataloader = dataloader_type == "cyclic" ? DataloaderType::kCyclic : DataloaderType::kSingle;
  a.data_sharding = !no_data_sharding;
  a.instruction = instruction;
  a.pack = instruction && reset_attention_mask && reset_position_ids;
  if (!instruction) {
    a.eod.reset_attention_mask = reset_attention_mask;
    a.eod.reset_position_ids = reset_position_ids;
  }
  a.eod.eod_mask_loss = eod_mask_loss;
  a.calculate_per_token_loss = calculate_per_token_loss;
  a.log_params_norm = log_params_norm;
  a.log_num_zeros = log_num_zeros;
  a.data_cache_path = data_cache_path;
  a.eval_interval = eval_interval;
  a.start_eval_at_iter = start_eval_at_iter;
  a.eval_micro_batch = eval_micro_batch.value_or(0);
  a.eval_global_batch = eval_global_batch.value_or(0);
  a.eval_iters = eval_iters;
  a.metrics_dir = log_dir ? *log_dir : save.value_or("");
  if (skip_train) {  // Megatron: the schedule is neither needed nor checked
    if (eval_iters < 1)
      throw UsageError(fmt::format("--skip-train with --eval-iters {}: nothing to evaluate. Hint: --eval-iters N "
                                   "global batches of each split", eval_iters));
    a.lr.max_lr = lr.value_or(0);
  } else {
    if (!lr) throw UsageError("--lr is required (the peak learning rate)");
    schedule_args(a, gb);
  }
  a.clip_grad = clip_grad;
  a.fp16 = fp16;
  a.bf16 = bf16;
  a.initial_loss_scale = initial_loss_scale;
  a.static_loss_scale = static_loss_scale.value_or(0);
  a.min_loss_scale = min_loss_scale;
  a.loss_scale_window = loss_scale_window;
  a.hysteresis = hysteresis;
  a.log_interval = log_interval;
  a.exit_on_nan = exit_on_nan;
  a.save_dir = save.value_or("");
  a.tensorboard_dir = tensorboard_dir.value_or("");
  a.tensorboard_tags = tensorboard_tags;
  a.save_interval = save_interval;
  a.exit_interval = exit_interval;
  a.exit_duration_s = double(exit_duration_mins) * 60.0;
  a.keep_last = keep_last;
  a.save_optim = !no_save_optim;
  a.save_rng = !no_save_rng;
  a.seed = seed;
  a.distributed_optimizer = distributed_optimizer || (zero_stage && *zero_stage >= 1);
  a.finetune = finetune && !resume;
  a.resume_step = load_step();
  a.load_optim = !no_load_optim || resume;
  if (override_scheduler && checkpoint_scheduler && !skip_train)  // Megatron's scheduler asserts it too
    throw UsageError("--override-opt_param-scheduler with --use-checkpoint-opt_param-scheduler: pick one "
                     "(this command line's schedule or the checkpoint's)");
  a.scheduler_on_resume = override_scheduler     ? SchedulerOnResume::Override
                          : checkpoint_scheduler ? SchedulerOnResume::UseCheckpoint
                                                 : SchedulerOnResume::Check;
  if (skip_train) {  // Megatron's: no optimizer state is loaded, and nothing of the run is written
    a.skip_train = true;
    a.load_optim = false;
    a.save_dir.clear();
    a.tensorboard_dir.clear();
    a.metrics_dir.clear();
  }
  return a;
}

}  // namespace cs::cli
