#include "train/checkpointing.h"

#include <fmt/core.h>

#include <cmath>
#include <filesystem>

#include "backend/host_copy.h"
#include "checkpoint/native.h"
#include "core/log.h"
#include "train/hf_model.h"
#include "train/shard_layout.h"

namespace cs {

namespace {
// Where shard spec s of a model (config cfg) sits in the whole tensor: its tensor-parallel slice.
TpSlice slice_of(const ParamSpec& s, const ModelConfig& cfg, const ModelShard& shard) {
  ParamSpec whole = s;
  whole.shape = s.global_shape;
  return tp_slice(whole, cfg, shard.tp_size, shard.tp_rank);
}

// The shard entries of one flat f32 device buffer laid out as ps (parameters, moments), each with
// its place in the whole tensor: host copies of it (none on a host backend) kept alive in `hold`
// until the writer commits.
std::vector<ShardTensor> entries(Ctx& ctx, const ModelConfig& cfg, const ParamStore& ps, const std::string& prefix,
                                 const Tensor& flat, std::vector<HostCopy>& hold) {
  CS_CHECK(flat.dtype == DType::F32) << "checkpoints hold f32 tensors, got " << dtype_name(flat.dtype);
  hold.emplace_back(ctx, flat, HostCopy::kRead);
  const Tensor host = hold.back().host_tensor();
  std::vector<ShardTensor> out;
  for (const ParamSpec& s : ps.specs()) {
    // A replicated tensor (the same on every tensor-parallel rank) is stored once, by rank 0.
    if (s.split == TpSplit::None && ps.shard().tp_rank > 0) continue;
    const TpSlice sl = slice_of(s, cfg, ps.shard());
    CS_CHECK(sl.local == s.shape) << s.name << ": slice " << sl.local.str() << " of a shard holding " << s.shape.str();
    out.push_back({prefix + s.name, host.slice_rows(s.offset, s.offset + s.shape.numel()).view(s.shape),
                   s.global_shape, sl.offset, sl.row_blocks});
  }
  return out;
}

std::string layout_suffix(const ModelShard& sh) {
  return fmt::format("tp{:02d}-pp{:03d}", sh.tp_rank, sh.pp_rank);
}

// The stored training state must be one a run can have reached: a meta.json edited by hand or
// damaged is refused here, not found out as a crash or silent NaN steps later.
void check_state(const std::string& dir, int64_t folder_iteration, const TrainingState& st) {
  auto need = [&](bool ok, const std::string& what) {
    if (!ok) throw Error(fmt::format("[checkpoint] {}/meta.json: {}", dir, what));
  };
  need(st.iteration == folder_iteration,
       fmt::format("iteration {} but the folder is iteration {}; expected the same", st.iteration, folder_iteration));
  need(st.consumed_samples >= 0 && st.consumed_valid_samples >= 0,
       fmt::format("consumed samples {} / {}: expected counts of 0 or more", st.consumed_samples,
                   st.consumed_valid_samples));
  // Even a sample per iteration of a long run stays far below this; beyond it the sample
  // arithmetic would overflow.
  need(st.consumed_samples < (int64_t(1) << 52) && st.consumed_valid_samples < (int64_t(1) << 52),
       fmt::format("consumed samples {}: expected fewer than 2^52", st.consumed_samples));
  need(st.schedule_steps >= 0 && st.schedule_steps <= st.iteration,
       fmt::format("scheduler num_steps {}: expected 0 to the iteration {}", st.schedule_steps, st.iteration));
  need(st.schedule_samples >= -1 && st.schedule_samples <= st.consumed_samples,
       fmt::format("scheduler num_samples {}: expected 0 to the consumed samples {}", st.schedule_samples,
                   st.consumed_samples));
}

// The scheduler's settings in meta.json (absent before they were kept); values a run cannot have
// had are refused, as check_state does for the position.
std::optional<SchedulerSettings> read_scheduler_settings(const std::string& dir, const nlohmann::json& j) {
  if (!j.contains("max_lr")) return std::nullopt;
  SchedulerSettings s;
  s.lr.max_lr = j.at("max_lr").get<double>();
  s.lr.min_lr = j.at("min_lr").get<double>();
  s.lr.warmup_steps = j.at("lr_warmup_steps").get<double>();
  s.lr.decay_steps = j.at("lr_decay_steps").get<int64_t>();
  s.lr.init_lr = j.at("lr_warmup_init").get<double>();
  s.weight_decay = j.at("start_wd").get<double>();
  s.end_weight_decay = j.at("end_wd").get<double>();
  s.wd_incr_steps = j.value("wd_incr_steps", int64_t(0));  // (absent before the increment was built)
  const std::string style = j.at("lr_decay_style").get<std::string>(), wd_style = j.at("wd_incr_style");
  const bool ok_style = style == "constant" || style == "linear" || style == "cosine" ||
                        style == "inverse-square-root" || style == "WSD";
  const bool ok_wd = wd_style == "constant" ? s.end_weight_decay == s.weight_decay
                                            : (wd_style == "linear" || wd_style == "cosine") && s.wd_incr_steps >= 1;
  if (!ok_style || !ok_wd || !(s.weight_decay >= 0) || !(s.end_weight_decay >= s.weight_decay) ||
      !(s.lr.max_lr >= 0) || !(s.lr.min_lr >= 0) || !(s.lr.init_lr >= 0) || !(s.lr.warmup_steps >= 0) ||
      s.lr.decay_steps < 1 || !std::isfinite(s.lr.max_lr) || !std::isfinite(s.end_weight_decay))
    throw Error(fmt::format("[checkpoint] {}/meta.json: scheduler {}: expected lr values of 0 or more, a decay of at "
                            "least 1 sample, a decay style constant, linear, cosine, inverse-square-root or WSD, and "
                            "a weight decay of 0 or more, constant (end = start) or increasing linearly or along a "
                            "cosine over at least 1 sample", dir, j.dump()));
  s.lr.style = parse_lr_decay(style);
  s.wd_style = parse_wd_incr(wd_style);
  return s;
}

// Reads this shard's slice of every parameter-shaped tensor `prefix + name` of r into the flat f32
// device buffer `flat`, whatever layout wrote the checkpoint (the reader assembles a slice from the
// files that overlap it).
void read_flat(Ctx& ctx, const CheckpointReader& r, const ModelConfig& cfg, const ParamStore& ps,
               const std::string& prefix, const Tensor& flat) {
  HostCopy h(ctx, flat, HostCopy::kWrite);
  const Tensor host = h.host_tensor();
  for (const ParamSpec& s : ps.specs()) {
    const std::string name = prefix + s.name;
    if (!r.has(name))
      throw Error(fmt::format("[checkpoint] {}: missing tensor {}. Hint: a checkpoint of another model?", r.dir(),
                              name));
    float* dst = host.slice_rows(s.offset, s.offset + s.shape.numel()).f32();
    if (s.shape == s.global_shape) {
      r.read_all(name, s.shape, dst);
      continue;
    }
    if (r.global_shape(name) != s.global_shape)
      throw Error(fmt::format("[checkpoint] {}: tensor {} has shape {}, the model's is {}", r.dir(), name,
                              r.global_shape(name).str(), s.global_shape.str()));
    const TpSlice sl = slice_of(s, cfg, ps.shard());
    if (sl.row_blocks.empty()) {
      r.read(name, sl.offset, sl.local, dst);
      continue;
    }
    const int64_t cols = sl.local.ndim > 1 ? sl.local[1] : 1;
    for (const RowBlock& b : sl.row_blocks) {  // W_pack: the rank's q, k and v rows
      r.read(name, {b.global_row, sl.offset.size() > 1 ? sl.offset[1] : 0}, Shape{b.rows, cols}, dst);
      dst += b.rows * cols;
    }
  }
  h.flush();
}
}  // namespace

nlohmann::json checkpoint_meta(const ModelConfig& cfg, const TrainingState& st, int64_t tp, int64_t pp) {
  nlohmann::json sched = {{"num_steps", st.schedule_steps}, {"num_samples", st.schedule_samples}};
  if (st.scheduler) {  // Megatron's names; lr_warmup_init is this program's own
    const LrSchedule& l = st.scheduler->lr;
    sched.update({{"max_lr", l.max_lr}, {"min_lr", l.min_lr}, {"lr_warmup_steps", l.warmup_steps},
                  {"lr_decay_steps", l.decay_steps}, {"lr_decay_style", lr_decay_name(l.style)},
                  {"lr_warmup_init", l.init_lr}, {"start_wd", st.scheduler->weight_decay},
                  {"end_wd", st.scheduler->end_wd()}, {"wd_incr_style", wd_incr_name(st.scheduler->wd_style)},
                  {"wd_incr_steps", st.scheduler->wd_incr_steps}});
  }
  return {{"format", kNativeFormat},
          {"iteration", st.iteration},
          {"consumed_samples", st.consumed_samples},
          {"config", config_to_hf_json(cfg)},
          {"layout", {{"tensor_model_parallel_size", tp}, {"pipeline_model_parallel_size", pp},
                      {"data_parallel_size", 1}}},
          {"scheduler", sched},
          {"rng", {{"seed", st.seed}}},
          {"data", {{"consumed_samples", st.consumed_samples}, {"consumed_valid_samples", st.consumed_valid_samples}}}};
}

void save_model_checkpoint(const std::string& root, const Model& model) {
  CheckpointWriter w(root, 0);
  const ParamStore& ps = model.params();
  std::vector<HostCopy> hold;
  w.add_shard("model-tp00-pp000.safetensors", entries(model.ctx(), model.config(), ps, "", ps.flat_params(), hold));
  w.commit(checkpoint_meta(model.config(), TrainingState{}));
}

void save_training_checkpoint(const std::string& root, const TrainingState& st, const Model& model, AdamW& adam,
                              const LossScaler& scaler, int keep_last, const CheckpointRanks& ranks,
                              const CheckpointParts& parts) {
  const ParamStore& ps = model.params();
  Ctx& ctx = model.ctx();
  // This shard's whole optimizer state, whatever its data-parallel sharding: a sharded optimizer
  // all-gathers it here (every rank takes part), so the files are the same for every DP layout.
  const AdamW::State full = adam.gather(ps);
  // Rank 0 starts the checkpoint folder, every tensor-parallel rank writes its own files into it
  // (in parallel: one replica of each shard, data-parallel rank 0), rank 0 commits once all wrote.
  std::unique_ptr<CheckpointWriter> w;
  if (ranks.commit) w = std::make_unique<CheckpointWriter>(root, st.iteration);
  if (ranks.world) ranks.world->barrier(ctx);
  if (ranks.write_shard) {
    if (!w) w = std::make_unique<CheckpointWriter>(CheckpointWriter::join(root, st.iteration));
    std::vector<HostCopy> hold;
    const std::string at = layout_suffix(ps.shard());
    // The model shard holds the fp32 master weights (the parameters themselves when they are f32).
    w->add_shard("model-" + at + ".safetensors", entries(ctx, model.config(), ps, "", full.master, hold));
    if (parts.optimizer) {
      std::vector<ShardTensor> optim = entries(ctx, model.config(), ps, "exp_avg.", full.exp_avg, hold);
      for (ShardTensor& t : entries(ctx, model.config(), ps, "exp_avg_sq.", full.exp_avg_sq, hold))
        optim.push_back(std::move(t));
      w->add_shard("optim-" + at + "-dp000.safetensors", optim);
    }
  }
  if (ranks.world) ranks.world->barrier(ctx);
  if (!ranks.commit) return;
  const LossScaler::State sc = scaler.state();
  nlohmann::json meta = checkpoint_meta(model.config(), st, ps.shard().tp_size, ps.shard().pp_size);
  if (parts.optimizer) {
    meta["optimizer"] = {{"step", adam.steps()}};
    meta["loss_scaler"] = {{"scale", sc.scale}, {"growth_tracker", sc.growth_tracker},
                           {"hysteresis_tracker", sc.hysteresis_tracker}};
  } else {  // Megatron's --no-save-optim leaves the scheduler out with the optimizer
    meta.erase("scheduler");
    meta["no_save_optim"] = true;
  }
  if (!parts.rng) {
    meta.erase("rng");
    meta["no_save_rng"] = true;
  }
  w->commit(meta, keep_last);
}

ModelConfig checkpoint_model_config(const std::string& root, std::string* file, int64_t step) {
  const int64_t it = load_iteration(root, step);
  if (it < 0) throw Error(fmt::format("[checkpoint] {}: no checkpoint (no latest_checkpointed_iteration.txt)", root));
  CheckpointReader r(root, it);
  if (!r.meta().contains("config"))
    throw Error(fmt::format("[checkpoint] {}/meta.json: no model config", r.dir()));
  if (file) *file = r.dir() + "/meta.json";
  return config_from_hf_json(r.meta()["config"], r.dir() + "/meta.json");
}

CheckpointSummary checkpoint_summary(const std::string& root, int64_t step) {
  const int64_t it = load_iteration(root, step);
  if (it < 0) return {};
  const std::string dir = root + "/" + iteration_dir_name(it);
  const nlohmann::json m = CheckpointReader::read_meta(root, it);
  try {
    return {!m.value("no_save_optim", false), m.value("consumed_samples", int64_t(0)),
            m.contains("scheduler") ? read_scheduler_settings(dir, m.at("scheduler")) : std::nullopt};
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("[checkpoint] {}/meta.json: {}", dir, e.what()));
  }
}

std::string no_optimizer_message(const std::string& dir, bool resume_flag) {
  return fmt::format("[checkpoint] {}: saved with --no-save-optim, it holds no optimizer state (Adam's moments, the "
                     "learning-rate schedule, the loss scale){}. Hint: load it with --no-load-optim (they start "
                     "afresh at its iteration) or --finetune (its weights from iteration 0){}", dir,
                     resume_flag ? ", which --resume continues with" : "", resume_flag ? ", without --resume" : "");
}

std::unique_ptr<Model> load_model_weights(const std::string& dir, Ctx& ctx, Group& tp, int64_t max_batch,
                                          int64_t max_seq, MemoryRequest req) {
  // The config is checked against the memory before the model is allocated.
  auto check = [&](const ModelConfig& cfg, const std::string& file) {
    req.micro_batch = max_batch;
    req.act_seq = max_seq > 0 ? max_seq : cfg.max_seq_length;
    req.config_file = file;
    if (req.batch_source.empty()) {  // the activations' length is the config's
      req.batch_source = fmt::format("{}: the model's {} positions", file, cfg.max_seq_length);
      req.batch_exit = 1;
      req.batch_hint = "check max_position_embeddings / model_max_length in " + file;
    }
    check_memory(cfg, req);
  };
  if (!is_native_checkpoint(dir)) {
    check_not_an_iteration_folder(dir);
    return load_hf_model(dir, ctx, tp, max_batch, max_seq,
                         [&](ModelConfig& c) { check(c, hf_model_config_file(dir)); });
  }
  std::string file;
  ModelConfig cfg = checkpoint_model_config(dir, &file);
  cfg.max_seq_length = std::max(cfg.max_seq_length, max_seq);  // as load_hf_model
  check(cfg, file);
  auto model = std::make_unique<Model>(cfg, ctx, tp, max_batch, max_seq > 0 ? max_seq : cfg.max_seq_length);
  load_training_checkpoint(dir, *model, nullptr, nullptr);
  return model;
}

TrainingState load_training_checkpoint(const std::string& root, Model& model, AdamW* adam,
                                       LossScaler* scaler, int64_t step) {
  const int64_t it = load_iteration(root, step);
  if (it < 0) throw Error(fmt::format("[checkpoint] {}: no checkpoint to load", root));
  for (const std::string& partial : incomplete_checkpoints(root))
    log_warn("[checkpoint] ignoring {}: its write never completed (the process died while saving)", partial);
  CheckpointReader r(root, it);
  ParamStore& ps = model.params();
  Ctx& ctx = model.ctx();
  const ModelConfig& cfg = model.config();
  if (ps.param_dtype() == DType::F32) {
    read_flat(ctx, r, cfg, ps, "", ps.flat_params());
  } else {  // f32 in the file: into the master weights (or a staging buffer), cast into the parameters
    DeviceBuffer staging;
    Tensor master;
    if (adam) {
      master = adam->full_for_loading(ps).master;
    } else {
      staging = DeviceBuffer(ctx.backend, size_t(ps.numel()) * sizeof(float));
      master = staging.tensor({ps.numel()});
    }
    read_flat(ctx, r, cfg, ps, "", master);
    ctx.ops.cast(ctx, master, ps.flat_params());
  }
  const nlohmann::json& m = r.meta();
  try {
    const bool optim_saved = !m.value("no_save_optim", false);
    if (adam && !optim_saved) throw Error(no_optimizer_message(r.dir(), false));
    if (adam && !r.has("exp_avg." + ps.specs()[0].name)) {
      // A training checkpoint (meta.json names its optimizer) without the optimizer's tensors lost
      // its shard; a weights-only one (convert's) has none by design.
      if (m.contains("optimizer"))
        throw Error(fmt::format("[checkpoint] {}: the optimizer state (optim-*.safetensors) is missing. Hint: "
                                "--no-load-optim (or --finetune) starts Adam afresh from these weights", r.dir()));
      log_info("[checkpoint] {}: no optimizer state (a converted or weights-only checkpoint): Adam starts afresh", r.dir());
      adam->load_master(ps);
    } else if (adam) {
      const AdamW::State full = adam->full_for_loading(ps);
      read_flat(ctx, r, cfg, ps, "exp_avg.", full.exp_avg);
      read_flat(ctx, r, cfg, ps, "exp_avg_sq.", full.exp_avg_sq);
      adam->load_full(ps);  // this rank's shard of it, when sharded
      adam->set_steps(m.at("optimizer").at("step").get<int64_t>());
    }
    if (scaler && m.contains("loss_scaler")) {
      const auto& j = m.at("loss_scaler");
      const LossScaler::State sc{j.at("scale").get<double>(), j.at("growth_tracker").get<int64_t>(),
                                 j.at("hysteresis_tracker").get<int64_t>()};
      // A scale of 0 (or inf, NaN) would make every step's gradients NaN without a word. The
      // hysteresis tracker goes below 0 in overflows after the first backoff (Megatron's too: it
      // counts down at every overflow and is reset only when the scale grows).
      if (!(sc.scale > 0) || !std::isfinite(sc.scale) || sc.growth_tracker < 0)
        throw Error(fmt::format("[checkpoint] {}/meta.json: loss_scaler {{scale {}, growth_tracker {}, "
                                "hysteresis_tracker {}}}: expected a positive finite scale and a growth tracker of 0 "
                                "or more", r.dir(), sc.scale, sc.growth_tracker, sc.hysteresis_tracker));
      scaler->set_state(sc);
    }
    TrainingState st;
    st.iteration = m.at("iteration").get<int64_t>();
    st.consumed_samples = m.at("consumed_samples").get<int64_t>();
    if (optim_saved || m.contains("scheduler")) {  // --no-save-optim: none (the schedule restarts)
      st.schedule_steps = m.at("scheduler").at("num_steps").get<int64_t>();
      // Absent in checkpoints written before the schedule counted samples.
      st.schedule_samples = m.at("scheduler").value("num_samples", int64_t(-1));
      st.scheduler = read_scheduler_settings(r.dir(), m.at("scheduler"));
    }
    // Absent in checkpoints written before validation resumed its cursor: start it at 0.
    st.consumed_valid_samples = m.at("data").value("consumed_valid_samples", int64_t(0));
    st.seed_known = !m.value("no_save_rng", false);  // the seed comes from --seed then
    if (st.seed_known) st.seed = m.at("rng").at("seed").get<uint64_t>();
    check_state(r.dir(), it, st);
    log_info("[checkpoint] loaded {} (iteration {}, {} consumed samples)", r.dir(), st.iteration,
             st.consumed_samples);
    return st;
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("[checkpoint] {}/meta.json: {}", r.dir(), e.what()));
  }
}

}  // namespace cs
