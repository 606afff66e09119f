// chuanspeed train [Megatron/AscendSpeed flags]: the single-process trainer. Flag names and
// defaults are Megatron's, so launch scripts run with `python pretrain_baichuan.py` replaced by
// `chuanspeed train`. Megatron-LM flags with no effect here are listed once at start-up
// (cli/megatron_flags.h); unknown flags are errors.
#include <fmt/core.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <thread>

#include "checkpoint/megatron.h"
#include "checkpoint/native.h"
#include "train/checkpointing.h"

#include "backend/backend.h"
#include "cli/commands.h"
#include "cli/deepspeed_config.h"
#include "cli/parse.h"
#include "cli/train_flags.h"
#include "core/file_io.h"
#include "core/log.h"
#include "data/tokenizer.h"
#include "parallel/grid.h"
#include "backend/cpu/thread_count.h"
#include "parallel/mpi_group.h"
#include "parallel/nccl_group.h"
#include "train/hf_model.h"
#include "train/megatron_source.h"
#include "train/memory_budget.h"
#include "train/interleaved.h"
#include "train/pipeline.h"
#include "train/run_folder.h"
#include "train/trainer.h"

namespace cs::cli {

namespace {
// Set by SIGTERM / SIGINT; the trainer finishes the step, saves and returns (exit 0).
std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop.store(true); }

// A test hook, not a user feature (docs/development.md): CS_TEST_HOLD_AFTER_SAVE=N:FILE makes the
// run, once iteration N's checkpoint is complete, create FILE and wait there for the test to kill
// it -- a chosen moment between two saves instead of a race with a fast run. It waits at most 10
// minutes, then goes on, so a test that died first leaves no process waiting for ever.
std::function<void(int64_t)> hold_after_save(const std::string& spec) {
  const size_t colon = spec.find(':');
  int64_t at = -1;
  try {
    at = std::stoll(spec.substr(0, colon));
  } catch (const std::exception&) {
  }
  if (colon == std::string::npos || at < 0 || colon + 1 == spec.size())
    throw UsageError(fmt::format("CS_TEST_HOLD_AFTER_SAVE={}: expected ITERATION:FILE", spec));
  const std::string file = spec.substr(colon + 1);
  return [at, file](int64_t it) {
    if (it != at) return;
    write_file_atomic(file, std::to_string(::getpid()) + "\n", "train");
    for (int s = 0; s < 600; ++s) std::this_thread::sleep_for(std::chrono::seconds(1));
  };
}
}  // namespace

int train_main(int argc, char** argv) {
  const auto started = std::chrono::steady_clock::now();  // --exit-duration-in-mins counts from here
  CLI::App app("Pretrain or fine-tune a Baichuan model (Megatron flags)", "train");
  TrainFlags f;
  f.add_to(app);
  int code = 0;
  if (!parse(app, argc, argv, code)) return code;
  f.check_supported(app);
  // Every rank of the job (one process: a group of one). main() has initialised MPI when this
  // process was launched by mpirun / srun.
  std::unique_ptr<Group> world;
  if (mpi_active())
    world = MpiGroup::world(f.distributed_timeout_minutes * 60.0);
  else
    world = std::make_unique<SingleGroup>("world");
  const bool rank0 = world->rank() == 0;
  if (rank0)
    for (const std::string& note : f.ignored_notes(app)) log_info("[train] {}", note);
  if (const std::string note = f.resolve_pretrained(); !note.empty() && rank0) log_info("[train] {}", note);
  cpu::apply_threads(f.threads);  // per rank: the node's cores shared among its ranks

  // Vocabulary: the tokenizer's (or --vocab-size), padded as Megatron pads it; the end-of-document
  // id: the tokenizer's EOS, or the null tokenizer's added id.
  std::optional<int64_t> vocab = f.model.vocab_size;
  int32_t eod = -1;
  if (f.null_tokenizer()) {
    if (!vocab) throw UsageError("--tokenizer-type NullTokenizer needs --vocab-size");
    if (*vocab >= 0 && *vocab < INT32_MAX) eod = int32_t(*vocab);  // a larger one is refused with the vocabulary
    vocab = *vocab + 1;  // Megatron's NullTokenizer adds the end-of-document id
  } else if (f.tokenizer_path()) {
    Tokenizer tok(*f.tokenizer_path());
    vocab = tok.vocab_size();
    eod = tok.eos_id();
    if (rank0) log_info("[train] tokenizer {}: {} pieces", tok.model_path(), *vocab);
  }
  const bool needs_eod = f.eod_mask_loss || (!f.instruction && (f.reset_attention_mask || f.reset_position_ids));
  if (needs_eod && eod < 0)
    throw UsageError(fmt::format("{}: the end-of-document id is unknown ({}). Hint: pass the tokenizer the data was "
                                 "made with (--tokenizer-name-or-path), or --tokenizer-type NullTokenizer",
                                 f.eod_mask_loss ? "--eod-mask-loss"
                                 : f.reset_attention_mask ? "--reset-attention-mask" : "--reset-position-ids",
                                 f.tokenizer_path() ? "the tokenizer has no EOS piece" : "no tokenizer given"));
  if (needs_eod && rank0) {
    std::string what;
    if (!f.instruction && f.reset_attention_mask) what += ", attention stops at each";
    if (!f.instruction && f.reset_position_ids) what += ", positions restart after each";
    if (f.eod_mask_loss) what += ", the target after each is left out of the loss";
    log_info("[train] end-of-document id {}{}", eod, what);
  }
  auto backend = make_backend(f.device);
  auto ctx = backend->make_context();
  world = group_for_device(std::move(world), *backend);  // NCCL between GPUs (a collective)
  const int64_t seq = f.model.seq_length.value_or(0);
  const bool native = f.load && is_native_checkpoint(*f.load);
  const bool megatron = f.load && is_megatron_checkpoint(*f.load);
  const char* not_native = megatron ? "is a Megatron-LM checkpoint, of which only the tracked iteration's weights are read"
                                    : "is not a native checkpoint (no latest_checkpointed_iteration.txt)";
  if (f.ckpt_step && !native)
    throw UsageError(fmt::format("--ckpt-step {}: {} {} {}, and --ckpt-step picks a native checkpoint's iteration. "
                                 "Hint: leave --ckpt-step out", *f.ckpt_step,
                                 f.own_load ? "--pretrained-checkpoint" : "--load", f.load.value_or("(not given)"),
                                 not_native));
  if (f.resume && !native)
    throw UsageError(fmt::format("--resume: --load {} {}. Hint: --resume continues a run from its own --save directory",
                                 f.load.value_or("(not given)"), not_native));
  // A run's folder is its own: saved into a Megatron checkpoint's folder, its tracker and
  // iteration folders would mix with (and start-over would move away) the checkpoint it loads.
  if (f.save && is_megatron_checkpoint(*f.save))
    throw UsageError(fmt::format("--save {}: holds a Megatron-LM checkpoint. Hint: save this run into a folder of its "
                                 "own (a Megatron checkpoint is read through --load, never written into)", *f.save));
  // The model's config (--load's meta.json or config.json, else the flags), the grid, the run's
  // arguments and the memory they take: all checked before anything is allocated or --save touched.
  std::string config_file;  // empty: the flags
  ModelConfig cfg;
  if (native) {
    cfg = checkpoint_model_config(*f.load, &config_file, f.load_step());
    if (seq > cfg.max_seq_length) cfg.max_seq_length = seq;
  } else if (f.load) {
    config_file = hf_model_config_file(*f.load);
    cfg = hf_model_config(*f.load);
    cfg.max_seq_length = std::max(cfg.max_seq_length, seq);  // as load_hf_model
    if (f.tokenizer_path() && vocab && padded_vocab_size(*vocab, f.model.divisible_by, 1) > cfg.vocab_size)
      throw Error(fmt::format("[train] the tokenizer has {} pieces but the model loaded from {} has a "
                              "vocabulary of {}. Hint: use the model's own tokenizer", *vocab, *f.load, cfg.vocab_size));
  } else {
    ModelFlags mf = f.model;
    if (vocab) mf.vocab_size = vocab;
    if (!mf.vocab_size && mf.model == "tiny")
      throw UsageError("the vocabulary is unknown: pass --tokenizer-name-or-path or --vocab-size");
    cfg = mf.resolve(f.tp);  // padded to divisible-by x TP, as Megatron pads it
    f.megatron.apply(cfg);
  }
  if (f.load)
    f.model.check_loaded(cfg, config_file, f.tokenizer_path() ? std::nullopt : vocab,
                         f.megatron.use_checkpoint_args(app));
  f.megatron.check_model(cfg, f.load && f.megatron.use_checkpoint_args(app));
  f.model.apply_recompute(cfg);  // a run-time choice: a checkpoint's config does not hold it
  f.resolve_virtual_stages(cfg.num_layers);
  // The grid over the world's ranks (Megatron's order: TP fastest, then DP, then PP).
  const Grid grid = Grid::make(world->size(), world->rank(),
                               {int(f.tp), int(f.pp), f.micro_batch, f.global_batch.value_or(f.micro_batch),
                                cfg.num_heads, cfg.ffn_hidden_size, cfg.vocab_size, cfg.num_layers,
                                f.virtual_pipeline_layers.value_or(0)});
  TrainArgs a = f.train_args(cfg);
  if (f.load && is_megatron_checkpoint(*f.load)) {
    // Megatron starts a release at iteration 0 without optimizer state; another iteration it
    // resumes, optimizer and all, which is not read here: the weights alone need --finetune.
    const MegatronCheckpointPosition at = check_megatron_load(*f.load, a.finetune);
    if (rank0)
      log_info("[train] --load {}: Megatron-LM checkpoint ({}), its weights at iteration 0", *f.load,
               at.release ? "release" : fmt::format("iteration {}", at.iteration));
  }
  a.started = started;
  a.eod.eod = eod;
  a.adapt_threads = f.adaptive_threads;
  if (f.deepspeed_config) {
    const std::vector<std::string> notes =
        apply_deepspeed_config(read_deepspeed_config(*f.deepspeed_config), *f.deepspeed_config, a);
    if (rank0)
      for (const std::string& n : notes) log_info("[train] {}", n);
  }
  // A resume whose schedule settings differ from its checkpoint's is refused here, before the
  // model is allocated and the checkpoint read (the trainer settles them again as it loads).
  const CheckpointSummary saved = native ? checkpoint_summary(*f.load, f.load_step()) : CheckpointSummary{};
  if (native && a.load_optim && !a.finetune) {
    if (!saved.holds_optimizer) throw Error(no_optimizer_message(*f.load, f.resume));
    settle_scheduler(a.scheduler_settings(), saved.scheduler, a.scheduler_on_resume, *f.load, false);
  }
  if (a.fp16 && a.bf16)
    throw UsageError("--fp16 and --bf16 (from the flags or --deepspeed_config) both given: expected at most one");
  // Activations: planned for the config's length from the flags, for --seq-length over a loaded model.
  const int64_t act_seq = f.load && seq > 0 ? seq : cfg.max_seq_length;
  // This rank's part of the model: its pipeline stage's layers at its tensor-parallel rank; a stage
  // keeps the activations of the micro-batches in flight in its 1F1B schedule.
  // Interleaved (--num-layers-per-virtual-pipeline-stage N): V = layers / (PP x N) model chunks, each
  // planned for the interleaved schedule's slots.
  const int chunks = f.virtual_pipeline_layers ? int(cfg.num_layers / (grid.pp * *f.virtual_pipeline_layers)) : 1;
  ModelShard shard = ModelShard::stage(cfg, grid.pp_rank, grid.pp, grid.tp_rank, grid.tp, chunks);
  shard.sequence_parallel = f.sequence_parallel && grid.tp > 1;
  if (shard.sequence_parallel && act_seq % grid.tp != 0)
    throw UsageError(fmt::format("--sequence-parallel splits the sequence over the {} tensor-parallel ranks: "
                                 "--seq-length {} is not a multiple of {}", grid.tp, act_seq, grid.tp));
  // Each global batch of the run (a rampup's, then --global-batch-size or ds_config's): whole
  // micro-batches on every rank, in the schedule's groups, and activation slots for the most.
  // (A resumed run's batches: those from its checkpoint's consumed samples on.)
  const int64_t consumed = native && !a.finetune ? saved.consumed_samples : 0;
  a.rampup.check_split(a.global_batch, a.micro_batch, grid.dp, consumed);
  int64_t in_flight = 0;
  for (const int64_t batch : a.rampup.sizes(a.global_batch, consumed)) {
    const int64_t micro_per_rank = batch / (a.micro_batch * grid.dp);
    try {
      check_virtual_pipeline(f.virtual_pipeline_layers.value_or(0), grid.pp, cfg.num_layers, micro_per_rank);
    } catch (const UsageError& e) {  // say which of the rampup's batches
      if (batch == a.global_batch) throw;
      throw UsageError(fmt::format("--rampup-batch-size {} {} {}, at its global batch {}: {}", a.rampup.start,
                                   a.rampup.increment, a.rampup.samples, batch, e.what()));
    }
    in_flight = std::max(in_flight, chunks > 1 ? interleaved_slots(grid.pp, chunks, micro_per_rank)
                                               : one_f_one_b_slots(grid.pp_rank, grid.pp, micro_per_rank));
  }
  // An evaluation's micro-batches too (--eval-global-batch-size): the interleaved schedule's groups.
  check_eval_batches(a, grid.dp);
  if (a.eval_iters > 0) {
    try {
      check_virtual_pipeline(f.virtual_pipeline_layers.value_or(0), grid.pp, cfg.num_layers,
                             a.eval_gb() / (a.eval_mbs() * grid.dp));
    } catch (const UsageError& e) {
      if (a.eval_gb() == a.global_batch && a.eval_mbs() == a.micro_batch) throw;
      throw UsageError(fmt::format("--eval-global-batch-size {} / --eval-micro-batch-size {}: {}", a.eval_gb(),
                                   a.eval_mbs(), e.what()));
    }
  }
  MemoryRequest need;
  need.micro_batch = f.micro_batch;
  need.act_seq = act_seq;
  need.training = !a.skip_train;  // --skip-train: no optimizer state
  need.global_batch = a.global_batch;
  need.train_iters = a.train_iters;
  need.dp = grid.dp;
  need.tp = grid.tp;
  need.pp = grid.pp;
  need.virtual_layers = f.virtual_pipeline_layers.value_or(0);
  need.sequence_parallel = shard.sequence_parallel;
  need.distributed_optimizer = a.distributed_optimizer;
  need.bf16 = a.bf16;
  need.config_file = config_file;
  need.batch_source = fmt::format("--micro-batch-size {} and --seq-length {} (--train-iters {}, --global-batch-size {})",
                                  f.micro_batch, act_seq, a.train_iters, a.global_batch);
  need.batch_hint = "a smaller --micro-batch-size (gradients accumulate up to --global-batch-size) or --seq-length, "
                    "or --recompute-granularity full";
  check_memory(cfg, need);
  // One run, one folder: a new run never mixes with the run already in --save (every rank checks,
  // so a refusal is the same usage error everywhere), and rank 0 holds the folder's lock.
  std::unique_ptr<RunLock> run_lock;
  if (f.save && !f.skip_train) {
    std::error_code ec;
    const bool resuming_save =
        native && std::filesystem::weakly_canonical(*f.load, ec) == std::filesystem::weakly_canonical(*f.save, ec);
    // --pretrained-checkpoint with --load = --save that holds no checkpoint yet: the run stopped
    // before its first save, and its launch script starts it again; what it left is moved aside as
    // --start-over moves it.
    const bool again = f.own_load && std::filesystem::weakly_canonical(*f.own_load, ec) ==
                                         std::filesystem::weakly_canonical(*f.save, ec);
    const bool start_over = f.start_over || again;
    if (!resuming_save && !start_over) prepare_fresh_run_folder(*f.save, false);
    // --ckpt-step back into its own folder: the abandoned later checkpoints stay until this run's
    // saves replace them, and the latest file names the last of them until this run's first save.
    if (resuming_save && rank0 && f.load_step() >= 0) {
      const int64_t latest = latest_iteration(*f.save);
      if (latest > f.load_step())
        log_warn("[train] --ckpt-step {}: {} also holds this run's later checkpoints up to iteration {}; they are "
                 "replaced as this run saves those iterations, and until its first save a resume (--resume, pulse "
                 "--restart) would continue from iteration {}", f.load_step(), *f.save, latest, latest);
    }
    if (rank0) {
      run_lock = std::make_unique<RunLock>(*f.save);
      if (!resuming_save && start_over) {
        const std::string aside = prepare_fresh_run_folder(*f.save, true);
        if (!aside.empty())
          log_info("[train] {}: the previous run's files are now in {}",
                   f.start_over ? "--start-over" : "a start from --pretrained-checkpoint", aside);
      }
    }
    world->barrier(*ctx);
  }
  GridGroups groups = GridGroups::split(*world, grid);
  // --bf16: Megatron's bf16 (a bf16 compute copy of the parameters, fp32 gradients and master
  // weights, bf16 GEMMs); --fp16: the same in f16 on a GPU, f32 compute on the CPU (both with the
  // dynamic loss scaler).
  const bool gpu = backend->device() == Device::CUDA;
  const Precision precision = a.bf16 ? Precision::bf16() : a.fp16 && gpu ? Precision::fp16() : Precision{};
  auto model = std::make_unique<Model>(cfg, *ctx, *groups.tp, f.micro_batch, act_seq, shard, precision, in_flight);
  if (!native && f.load)
    load_hf_weights(*f.load, *model);
  else if (!native)
    model->params().init(*ctx, f.seed);
  if (native) a.resume_dir = *f.load;
  if (const char* hold = std::getenv("CS_TEST_HOLD_AFTER_SAVE")) a.after_save = hold_after_save(hold);
  a.stop = &g_stop;
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  std::signal(f.exit_signal_number(), on_signal);  // --exit-signal (Megatron's), e.g. a scheduler's SIGUSR1
  if (rank0) {
    log_info("[train] model: {}", model->config().summary());
    if (a.rampup.on())
      log_info("[train] batch-size rampup: the global batch grows from {} by {} over the first {} samples",
               a.rampup.start, a.rampup.increment, a.rampup.samples);
    const std::string layout =
        fmt::format("{}{}{}", grid.dp > 1 ? fmt::format(" over {} data-parallel ranks", grid.dp) : "",
                    grid.tp > 1 ? fmt::format(", tensor-parallel over {}{}", grid.tp,
                                              shard.sequence_parallel ? " with sequence parallelism" : "")
                                : "",
                    grid.pp > 1 ? fmt::format(", {} pipeline stages ({})", grid.pp,
                                              chunks > 1 ? fmt::format("interleaved 1F1B, {} model chunks each", chunks)
                                                         : std::string("1F1B"))
                                : "");
    if (a.skip_train)
      log_info("[train] --skip-train: evaluating {} at iteration {} on {} global batches of {} samples of {} tokens "
               "of the validation and test splits ({} micro-batches of {}{}); nothing is trained or written",
               native ? *f.load : f.load ? *f.load + " (Hugging Face weights)" : std::string("a new model"),
               native && !a.finetune ? load_iteration(*f.load, f.load_step()) : 0, a.eval_iters, a.eval_gb(),
               a.seq_length, a.eval_gb() / a.eval_mbs(), a.eval_mbs(), layout);
    else
      log_info("[train] {} iterations x {}{} samples of {} tokens ({}{} micro-batches of {}{})", a.train_iters,
               a.rampup.on() ? "up to " : "", a.global_batch, a.seq_length, a.rampup.on() ? "up to " : "",
               a.global_batch / a.micro_batch, a.micro_batch, layout);
  }
  TrainResult r = train(*model, a, *world, *groups.dp, groups.pp.get());
  if (r.stopped_on_nan) return 1;
  if (f.save && rank0 && !f.skip_train && !r.stopped_by_signal && !r.stopped_by_exit_interval && !r.stopped_by_duration) {
    if (grid.tp == 1 && grid.pp == 1) {
      save_hf_model(*model, *f.save + "/hf");
      log_info("[train] weights also -> {}/hf (Hugging Face format)", *f.save);
    } else {  // the whole tensors are in no one rank: the checkpoint's shards make them
      log_info("[train] Hugging Face weights: chuanspeed convert --input {} --output {}/hf --to hf", *f.save, *f.save);
    }
  }
  return 0;
}

}  // namespace cs::cli
