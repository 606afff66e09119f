// Training checkpoints: the model, the optimizer (fp32 master weights are the parameters on CPU;
// Adam moments and step), the lr-schedule position, the loss scaler, the RNG seed and the data
// cursor (consumed samples) in the native format (checkpoint/native.h), so that a resumed run
// continues bit-identically. Each tensor-parallel rank writes its own shard files; loading reads
// the model's slices from whatever layout wrote them.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "model/model.h"
#include "optim/adamw.h"
#include "optim/loss_scaler.h"
#include "optim/lr_schedule.h"
#include "train/memory_budget.h"

namespace cs {

struct TrainingState {
  int64_t iteration = 0, consumed_samples = 0, schedule_steps = 0;
  // The lr scheduler's position in samples (Megatron's num_steps): the stepped iterations' global
  // batches, kept as such if a resumed run changes the global batch. -1: not in the checkpoint
  // (schedule_steps x the global batch).
  int64_t schedule_samples = -1;
  int64_t consumed_valid_samples = 0;  // the validation cursor (Megatron's consumed_valid_samples)
  uint64_t seed = 0;
  bool seed_known = true;  // false: a --no-save-rng checkpoint (no seed stored)
  // The scheduler's settings the run trained with (Megatron's max_lr, min_lr, lr_warmup_steps,
  // lr_decay_steps, lr_decay_style, start_wd / end_wd): checked when a run resumes. Absent in
  // checkpoints written before they were kept, and in weights-only ones.
  std::optional<SchedulerSettings> scheduler;
};

// meta.json of a checkpoint: format, iteration, consumed samples, the config (HF style), the
// layout, scheduler, RNG and data cursor (optimizer and loss scaler are added by their savers).
nlohmann::json checkpoint_meta(const ModelConfig& cfg, const TrainingState& st, int64_t tp = 1, int64_t pp = 1);

// Which part of a checkpoint this rank writes: every rank calls save_training_checkpoint (a sharded
// optimizer gathers its state); write_shard ranks (one replica of each tensor-parallel shard)
// write their files, the commit rank (0) starts and commits the folder; the ranks meet at
// barriers of world (none for one process).
struct CheckpointRanks {
  Group* world = nullptr;
  bool write_shard = true, commit = true;
};

// What a training checkpoint holds besides the weights and the run's position (Megatron's
// --no-save-optim: no optimizer state, learning-rate schedule or loss scale; --no-save-rng: no seed).
struct CheckpointParts {
  bool optimizer = true, rng = true;
};

// Writes ROOT/iter_XXXXXXX (see checkpoint/native.h) and prunes to keep_last (0: keep all): per
// tensor-parallel rank model-tpXX-pp000.safetensors and optim-tpXX-pp000-dp000.safetensors, each
// tensor with its place in the whole tensor, so any layout can load it.
void save_training_checkpoint(const std::string& root, const TrainingState& st, const Model& model, AdamW& adam,
                              const LossScaler& scaler, int keep_last, const CheckpointRanks& ranks = {},
                              const CheckpointParts& parts = {});

// A weights-only checkpoint at iteration 0 (what `chuanspeed convert --to native` writes): no
// optimizer shard; a run that loads it starts Adam afresh.
void save_model_checkpoint(const std::string& root, const Model& model);

// The model config stored in ROOT's latest checkpoint, or in its iteration STEP when >= 0 (Megatron's
// --ckpt-step; native.h load_iteration) (a cs::Error when ROOT has none); FILE, when given,
// receives the path of the meta.json it came from.
ModelConfig checkpoint_model_config(const std::string& root, std::string* file = nullptr, int64_t step = -1);

// What a run needs to know of ROOT's latest checkpoint before the model is built (its meta.json
// alone is read): whether it holds its optimizer state (false: saved with --no-save-optim), the
// samples it consumed and the scheduler settings it trained with (none: an older, weights-only or
// --no-save-optim one). No checkpoint: {true, 0, none}.
struct CheckpointSummary {
  bool holds_optimizer = true;
  int64_t consumed_samples = 0;
  std::optional<SchedulerSettings> scheduler;
};
CheckpointSummary checkpoint_summary(const std::string& root, int64_t step = -1);
// The one line that refuses to load a --no-save-optim checkpoint with its optimizer (resume_flag:
// the command passed --resume, which always loads it).
std::string no_optimizer_message(const std::string& dir, bool resume_flag);

// The weights of DIR, a native checkpoint root or a Hugging Face directory, in a model planned
// for (max_batch, max_seq) activations (max_seq 0: the config's length). Before anything is
// allocated, check_memory refuses a model that does not fit (REQ: the command's other buffers and
// how to name its flags; its batch, length and config file are filled in here).
std::unique_ptr<Model> load_model_weights(const std::string& dir, Ctx& ctx, Group& tp, int64_t max_batch,
                                          int64_t max_seq, MemoryRequest req = {});

// Loads ROOT's latest checkpoint (or its iteration STEP when >= 0) into model (always), adam (unless
// null) and scaler (unless null);
// returns the stored training state. A model of another size is an error naming the tensor; an adam
// for a checkpoint saved without its optimizer (--no-save-optim) is an error naming the flags that
// load it (--no-load-optim, --finetune), as Megatron refuses it.
TrainingState load_training_checkpoint(const std::string& root, Model& model, AdamW* adam,
                                       LossScaler* scaler, int64_t step = -1);

}  // namespace cs
