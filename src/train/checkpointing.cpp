#include "train/checkpointing.h"

#include <fmt/core.h>

#include <cmath>
#include <filesystem>

#include "backend/host_copy.h"
#include "checkpoint/native.h"
#include "core/log.h"
#include "train/hf_model.h"

namespace cs {

namespace {
// The shard entries of one flat f32 device buffer laid out as ps (parameters, moments): host
// copies of it (none on a host backend) kept alive in `hold` until the writer commits.
std::vector<ShardTensor> whole(Ctx& ctx, const ParamStore& ps, const std::string& prefix, const Tensor& flat,
                               std::vector<HostCopy>& hold) {
  CS_CHECK(flat.dtype == DType::F32) << "checkpoints hold f32 tensors, got " << dtype_name(flat.dtype);
  hold.emplace_back(ctx, flat, HostCopy::kRead);
  const Tensor host = hold.back().host_tensor();
  std::vector<ShardTensor> out;
  for (const ParamSpec& s : ps.specs())
    out.push_back({prefix + s.name, host.slice_rows(s.offset, s.offset + s.shape.numel()).view(s.shape), s.shape,
                   std::vector<int64_t>(size_t(s.shape.ndim), 0)});
  return out;
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
}

// Reads every parameter-shaped tensor `prefix + name` of r into the flat f32 device buffer `flat`.
void read_flat(Ctx& ctx, const CheckpointReader& r, const ParamStore& ps, const std::string& prefix,
               const Tensor& flat) {
  HostCopy h(ctx, flat, HostCopy::kWrite);
  const Tensor host = h.host_tensor();
  for (const ParamSpec& s : ps.specs()) {
    if (!r.has(prefix + s.name))
      throw Error(fmt::format("[checkpoint] {}: missing tensor {}. Hint: a checkpoint of another model?", r.dir(),
                              prefix + s.name));
    r.read_all(prefix + s.name, s.shape, host.slice_rows(s.offset, s.offset + s.shape.numel()).f32());
  }
  h.flush();
}
}  // namespace

nlohmann::json checkpoint_meta(const ModelConfig& cfg, const TrainingState& st, int64_t tp, int64_t pp) {
  return {{"format", kNativeFormat},
          {"iteration", st.iteration},
          {"consumed_samples", st.consumed_samples},
          {"config", config_to_hf_json(cfg)},
          {"layout", {{"tensor_model_parallel_size", tp}, {"pipeline_model_parallel_size", pp},
                      {"data_parallel_size", 1}}},
          {"scheduler", {{"num_steps", st.schedule_steps}}},
          {"rng", {{"seed", st.seed}}},
          {"data", {{"consumed_samples", st.consumed_samples}, {"consumed_valid_samples", st.consumed_valid_samples}}}};
}

void save_model_checkpoint(const std::string& root, const Model& model) {
  CheckpointWriter w(root, 0);
  const ParamStore& ps = model.params();
  std::vector<HostCopy> hold;
  w.add_shard("model-tp00-pp000.safetensors", whole(model.ctx(), ps, "", ps.flat_params(), hold));
  w.commit(checkpoint_meta(model.config(), TrainingState{}));
}

void save_training_checkpoint(const std::string& root, const TrainingState& st, const Model& model, AdamW& adam,
                              const LossScaler& scaler, int keep_last, bool write) {
  const ParamStore& ps = model.params();
  Ctx& ctx = model.ctx();
  // The whole optimizer state, whatever its sharding: a sharded optimizer all-gathers it here
  // (every rank takes part), and the files are the same for every layout.
  const AdamW::State full = adam.gather(ps);
  if (!write) return;
  CheckpointWriter w(root, st.iteration);
  std::vector<HostCopy> hold;
  // The model shard holds the fp32 master weights (the parameters themselves when they are f32).
  w.add_shard("model-tp00-pp000.safetensors", whole(ctx, ps, "", full.master, hold));
  std::vector<ShardTensor> optim = whole(ctx, ps, "exp_avg.", full.exp_avg, hold);
  for (ShardTensor& t : whole(ctx, ps, "exp_avg_sq.", full.exp_avg_sq, hold)) optim.push_back(std::move(t));
  w.add_shard("optim-tp00-pp000-dp000.safetensors", optim);
  const LossScaler::State sc = scaler.state();
  nlohmann::json meta = checkpoint_meta(model.config(), st);
  meta["optimizer"] = {{"step", adam.steps()}};
  meta["loss_scaler"] = {{"scale", sc.scale}, {"growth_tracker", sc.growth_tracker},
                         {"hysteresis_tracker", sc.hysteresis_tracker}};
  w.commit(meta, keep_last);
}

ModelConfig checkpoint_model_config(const std::string& root, std::string* file) {
  const int64_t it = latest_iteration(root);
  if (it < 0) throw Error(fmt::format("[checkpoint] {}: no checkpoint (no latest_checkpointed_iteration.txt)", root));
  CheckpointReader r(root, it);
  if (!r.meta().contains("config"))
    throw Error(fmt::format("[checkpoint] {}/meta.json: no model config", r.dir()));
  if (file) *file = r.dir() + "/meta.json";
  return config_from_hf_json(r.meta()["config"], r.dir() + "/meta.json");
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
                         [&](ModelConfig& c) { check(c, dir + "/config.json"); });
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
                                       LossScaler* scaler) {
  const int64_t it = latest_iteration(root);
  if (it < 0) throw Error(fmt::format("[checkpoint] {}: no checkpoint to load", root));
  for (const std::string& partial : incomplete_checkpoints(root))
    log_warn("[checkpoint] ignoring {}: its write never completed (the process died while saving)", partial);
  CheckpointReader r(root, it);
  ParamStore& ps = model.params();
  Ctx& ctx = model.ctx();
  if (ps.param_dtype() == DType::F32) {
    read_flat(ctx, r, ps, "", ps.flat_params());
  } else {  // f32 in the file: into the master weights (or a staging buffer), cast into the parameters
    DeviceBuffer staging;
    Tensor master;
    if (adam) {
      master = adam->full_for_loading(ps).master;
    } else {
      staging = DeviceBuffer(ctx.backend, size_t(ps.numel()) * sizeof(float));
      master = staging.tensor({ps.numel()});
    }
    read_flat(ctx, r, ps, "", master);
    ctx.ops.cast(ctx, master, ps.flat_params());
  }
  const nlohmann::json& m = r.meta();
  try {
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
      read_flat(ctx, r, ps, "exp_avg.", full.exp_avg);
      read_flat(ctx, r, ps, "exp_avg_sq.", full.exp_avg_sq);
      adam->load_full(ps);  // this rank's shard of it, when sharded
      adam->set_steps(m.at("optimizer").at("step").get<int64_t>());
    }
    if (scaler && m.contains("loss_scaler")) {
      const auto& j = m.at("loss_scaler");
      const LossScaler::State sc{j.at("scale").get<double>(), j.at("growth_tracker").get<int64_t>(),
                                 j.at("hysteresis_tracker").get<int64_t>()};
      // A scale of 0 (or inf, NaN) would make every step's gradients NaN without a word.
      if (!(sc.scale > 0) || !std::isfinite(sc.scale) || sc.growth_tracker < 0 || sc.hysteresis_tracker < 0)
        throw Error(fmt::format("[checkpoint] {}/meta.json: loss_scaler {{scale {}, growth_tracker {}, "
                                "hysteresis_tracker {}}}: expected a positive finite scale and trackers of 0 or more",
                                r.dir(), sc.scale, sc.growth_tracker, sc.hysteresis_tracker));
      scaler->set_state(sc);
    }
    TrainingState st;
    st.iteration = m.at("iteration").get<int64_t>();
    st.consumed_samples = m.at("consumed_samples").get<int64_t>();
    st.schedule_steps = m.at("scheduler").at("num_steps").get<int64_t>();
    // Absent in checkpoints written before validation resumed its cursor: start it at 0.
    st.consumed_valid_samples = m.at("data").value("consumed_valid_samples", int64_t(0));
    st.seed = m.at("rng").at("seed").get<uint64_t>();
    check_state(r.dir(), it, st);
    log_info("[checkpoint] loaded {} (iteration {}, {} consumed samples)", r.dir(), st.iteration,
             st.consumed_samples);
    return st;
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("[checkpoint] {}/meta.json: {}", r.dir(), e.what()));
  }
}

}  // namespace cs
