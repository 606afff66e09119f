// chuanspeed train [Megatron/AscendSpeed flags]: the single-process trainer. Flag names and
// defaults are Megatron's, so launch scripts run with `python pretrain_baichuan.py` replaced by
// `chuanspeed train`. Flags that are accepted but not used yet are listed once at start-up;
// unknown flags are errors.
#include <fmt/core.h>

#include <atomic>
#include <csignal>
#include <cmath>
#include <filesystem>
#include <map>

#include "checkpoint/native.h"
#include "train/checkpointing.h"

#include "backend/backend.h"
#include "cli/commands.h"
#include "cli/deepspeed_config.h"
#include "cli/parse.h"
#include "cli/train_flags.h"
#include "core/log.h"
#include "data/tokenizer.h"
#include "parallel/grid.h"
#include "parallel/mpi_group.h"
#include "train/hf_model.h"
#include "train/pipeline.h"
#include "train/run_folder.h"
#include "train/trainer.h"

namespace cs::cli {

namespace {
// Set by SIGTERM / SIGINT; the trainer finishes the step, saves and returns (exit 0).
std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop.store(true); }
}  // namespace

int train_main(int argc, char** argv) {
  CLI::App app("Pretrain or fine-tune a Baichuan model (Megatron flags)", "train");
  TrainFlags f;
  f.add_to(app);
  int code = 0;
  if (!parse(app, argc, argv, code)) return code;
  f.check_supported();
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

  // Vocabulary: the tokenizer's (or --vocab-size), padded as Megatron pads it.
  std::optional<int64_t> vocab = f.model.vocab_size;
  if (f.null_tokenizer()) {
    if (!vocab) throw UsageError("--tokenizer-type NullTokenizer needs --vocab-size");
    vocab = *vocab + 1;  // Megatron's NullTokenizer adds the end-of-document id
  } else if (f.tokenizer_path()) {
    Tokenizer tok(*f.tokenizer_path());
    vocab = tok.vocab_size();
    if (rank0) log_info("[train] tokenizer {}: {} pieces", tok.model_path(), *vocab);
  }
  auto backend = make_backend(f.device);
  auto ctx = backend->make_context();
  const int64_t seq = f.model.seq_length.value_or(0);
  const bool native = f.load && is_native_checkpoint(*f.load);
  if (f.resume && !native)
    throw UsageError(fmt::format("--resume: --load {} is not a native checkpoint (no latest_checkpointed_iteration.txt). "
                                 "Hint: --resume continues a run from its own --save directory",
                                 f.load.value_or("(not given)")));
  // One run, one folder: a new run never mixes with the run already in --save (every rank checks,
  // so a refusal is the same usage error everywhere), and rank 0 holds the folder's lock.
  std::unique_ptr<RunLock> run_lock;
  if (f.save) {
    std::error_code ec;
    const bool resuming_save =
        native && std::filesystem::weakly_canonical(*f.load, ec) == std::filesystem::weakly_canonical(*f.save, ec);
    if (!resuming_save && !f.start_over) prepare_fresh_run_folder(*f.save, false);
    if (rank0) {
      run_lock = std::make_unique<RunLock>(*f.save);
      if (!resuming_save && f.start_over) {
        const std::string aside = prepare_fresh_run_folder(*f.save, true);
        if (!aside.empty()) log_info("[train] --start-over: the previous run's files are now in {}", aside);
      }
    }
    world->barrier(*ctx);
  }
  // The model's config (a checkpoint's, a Hugging Face directory's, or the flags'), then the grid
  // over the world's ranks, validated before anything is allocated, then this rank's shard.
  ModelConfig cfg;
  int64_t max_seq = 0;
  if (native) {
    cfg = checkpoint_model_config(*f.load);
    if (seq > cfg.max_seq_length) cfg.max_seq_length = seq;
    f.model.apply_recompute(cfg);  // a run-time choice: the checkpoint's config does not hold it
    max_seq = seq > 0 ? seq : cfg.max_seq_length;
  } else if (f.load) {
    cfg = hf_model_config(*f.load);
    cfg.max_seq_length = std::max(cfg.max_seq_length, std::max<int64_t>(seq, 0));
    f.model.apply_recompute(cfg);
    max_seq = seq > 0 ? seq : cfg.max_seq_length;
    if (vocab && padded_vocab_size(*vocab, f.model.divisible_by, 1) > cfg.vocab_size)
      throw Error(fmt::format("[train] the tokenizer has {} pieces but the model loaded from {} has a "
                              "vocabulary of {}. Hint: use the model's own tokenizer", *vocab, *f.load,
                              cfg.vocab_size));
  } else {
    ModelFlags mf = f.model;
    if (vocab) mf.vocab_size = vocab;
    if (!mf.vocab_size && mf.model == "tiny")
      throw UsageError("the vocabulary is unknown: pass --tokenizer-name-or-path or --vocab-size");
    cfg = mf.resolve(f.tp);
    max_seq = cfg.max_seq_length;
  }
  const Grid grid = Grid::make(world->size(), world->rank(),
                               {int(f.tp), int(f.pp), f.micro_batch, f.global_batch.value_or(f.micro_batch),
                                cfg.num_heads, cfg.ffn_hidden_size, cfg.vocab_size, cfg.num_layers});
  GridGroups groups = GridGroups::split(*world, grid);
  ModelShard shard = ModelShard::stage(cfg, grid.pp_rank, grid.pp, grid.tp_rank, grid.tp);
  shard.sequence_parallel = f.sequence_parallel && grid.tp > 1;
  // A stage keeps the activations of the micro-batches in flight in its 1F1B schedule.
  const int64_t local_micro = f.global_batch.value_or(f.micro_batch) / (f.micro_batch * grid.dp);
  const int64_t in_flight = one_f_one_b_slots(grid.pp_rank, grid.pp, local_micro);
  if (shard.sequence_parallel && max_seq % grid.tp != 0)
    throw UsageError(fmt::format("--sequence-parallel splits the sequence over the {} tensor-parallel ranks: "
                                 "--seq-length {} is not a multiple of {}", grid.tp, max_seq, grid.tp));
  auto model = std::make_unique<Model>(cfg, *ctx, *groups.tp, f.micro_batch, max_seq, shard, Precision{}, in_flight);
  if (!native && f.load)
    load_hf_weights(*f.load, *model);
  else if (!native)
    model->params().init(*ctx, f.seed);
  TrainArgs a = f.train_args(model->config());
  if (f.deepspeed_config) {
    const std::vector<std::string> notes =
        apply_deepspeed_config(read_deepspeed_config(*f.deepspeed_config), *f.deepspeed_config, a);
    if (rank0)
      for (const std::string& n : notes) log_info("[train] {}", n);
  }
  if (native) a.resume_dir = *f.load;
  a.stop = &g_stop;
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  if (rank0) {
    log_info("[train] model: {}", model->config().summary());
    log_info("[train] {} iterations x {} samples of {} tokens ({} micro-batches of {}{}{}{})", a.train_iters,
             a.global_batch, a.seq_length, a.global_batch / a.micro_batch, a.micro_batch,
             grid.dp > 1 ? fmt::format(" over {} data-parallel ranks", grid.dp) : "",
             grid.tp > 1 ? fmt::format(", tensor-parallel over {}{}", grid.tp,
                                       shard.sequence_parallel ? " with sequence parallelism" : "")
                         : "",
             grid.pp > 1 ? fmt::format(", {} pipeline stages (1F1B)", grid.pp) : "");
  }
  TrainResult r = train(*model, a, *world, *groups.dp, groups.pp.get());
  if (r.stopped_on_nan) return 1;
  if (f.save && rank0 && !r.stopped_by_signal && !r.stopped_by_exit_interval) {
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
