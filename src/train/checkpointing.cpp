#include "train/checkpointing.h"

#include <fmt/core.h>

#include <filesystem>

#include "checkpoint/native.h"
#include "core/log.h"
#include "train/hf_model.h"

namespace cs {

namespace {
std::vector<ShardTensor> whole(const ParamStore& ps, const std::string& prefix, const float* base) {
  std::vector<ShardTensor> out;
  for (const ParamSpec& s : ps.specs())
    out.push_back({prefix + s.name, Tensor(const_cast<float*>(base) + s.offset, s.shape), s.shape,
                   std::vector<int64_t>(size_t(s.shape.ndim), 0)});
  return out;
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
  w.add_shard("model-tp00-pp000.safetensors", whole(ps, "", ps.flat_params().f32()));
  w.commit(checkpoint_meta(model.config(), TrainingState{}));
}

void save_training_checkpoint(const std::string& root, const TrainingState& st, const Model& model,
                              const AdamW& adam, const LossScaler& scaler, int keep_last) {
  CheckpointWriter w(root, st.iteration);
  const ParamStore& ps = model.params();
  w.add_shard("model-tp00-pp000.safetensors", whole(ps, "", ps.flat_params().f32()));
  std::vector<ShardTensor> optim = whole(ps, "exp_avg.", adam.exp_avg().f32());
  for (ShardTensor& t : whole(ps, "exp_avg_sq.", adam.exp_avg_sq().f32())) optim.push_back(std::move(t));
  w.add_shard("optim-tp00-pp000-dp000.safetensors", optim);
  const LossScaler::State sc = scaler.state();
  nlohmann::json meta = checkpoint_meta(model.config(), st);
  meta["optimizer"] = {{"step", adam.steps()}};
  meta["loss_scaler"] = {{"scale", sc.scale}, {"growth_tracker", sc.growth_tracker},
                         {"hysteresis_tracker", sc.hysteresis_tracker}};
  w.commit(meta, keep_last);
}

ModelConfig checkpoint_model_config(const std::string& root) {
  const int64_t it = latest_iteration(root);
  if (it < 0) throw Error(fmt::format("[checkpoint] {}: no checkpoint (no latest_checkpointed_iteration.txt)", root));
  CheckpointReader r(root, it);
  if (!r.meta().contains("config"))
    throw Error(fmt::format("[checkpoint] {}/meta.json: no model config", r.dir()));
  return config_from_hf_json(r.meta()["config"], r.dir() + "/meta.json");
}

std::unique_ptr<Model> load_model_weights(const std::string& dir, const Ops& ops, Group& tp,
                                          int64_t max_batch, int64_t max_seq) {
  if (!is_native_checkpoint(dir)) {
    check_not_an_iteration_folder(dir);
    return load_hf_model(dir, ops, tp, max_batch, max_seq);
  }
  ModelConfig cfg = checkpoint_model_config(dir);
  cfg.max_seq_length = std::max(cfg.max_seq_length, max_seq);  // as load_hf_model
  auto model = std::make_unique<Model>(cfg, ops, tp, max_batch, max_seq > 0 ? max_seq : cfg.max_seq_length);
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
  for (const ParamSpec& s : ps.specs()) {
    if (!r.has(s.name))
      throw Error(fmt::format("[checkpoint] {}: missing tensor {}. Hint: a checkpoint of another model?", r.dir(), s.name));
    r.read_all(s.name, s.shape, ps.param(s).f32());
  }
  const nlohmann::json& m = r.meta();
  try {
    if (adam && !r.has("exp_avg." + ps.specs()[0].name)) {
      log_info("[checkpoint] {}: no optimizer state (a converted or weights-only checkpoint): Adam starts afresh", r.dir());
    } else if (adam) {
      for (const ParamSpec& s : ps.specs()) {
        r.read_all("exp_avg." + s.name, s.shape, adam->exp_avg().f32() + s.offset);
        r.read_all("exp_avg_sq." + s.name, s.shape, adam->exp_avg_sq().f32() + s.offset);
      }
      adam->set_steps(m.at("optimizer").at("step").get<int64_t>());
    }
    if (scaler && m.contains("loss_scaler")) {
      const auto& j = m.at("loss_scaler");
      scaler->set_state({j.at("scale").get<double>(), j.at("growth_tracker").get<int64_t>(),
                         j.at("hysteresis_tracker").get<int64_t>()});
    }
    TrainingState st;
    st.iteration = m.at("iteration").get<int64_t>();
    st.consumed_samples = m.at("consumed_samples").get<int64_t>();
    st.schedule_steps = m.at("scheduler").at("num_steps").get<int64_t>();
    // Absent in checkpoints written before validation resumed its cursor: start it at 0.
    st.consumed_valid_samples = m.at("data").value("consumed_valid_samples", int64_t(0));
    st.seed = m.at("rng").at("seed").get<uint64_t>();
    log_info("[checkpoint] loaded {} (iteration {}, {} consumed samples)", r.dir(), st.iteration,
             st.consumed_samples);
    return st;
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("[checkpoint] {}/meta.json: {}", r.dir(), e.what()));
  }
}

}  // namespace cs
