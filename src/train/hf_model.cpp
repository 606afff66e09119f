#include "train/hf_model.h"

#include <fmt/core.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "checkpoint/hf_dir.h"
#include "checkpoint/safetensors.h"

namespace cs {

std::unique_ptr<Model> load_hf_model(const std::string& dir, const Ops& ops, Group& tp,
                                     int64_t max_batch, int64_t max_seq) {
  HfWeights hf(dir);
  ModelConfig cfg = config_from_hf_json(hf.config(), dir + "/config.json");
  if (max_seq > 0) cfg.max_seq_length = max_seq;
  auto model = std::make_unique<Model>(cfg, ops, tp, max_batch, cfg.max_seq_length);
  std::vector<ParamRef> wanted;
  for (const ParamSpec& s : model->params().specs())
    wanted.push_back({s.name, s.shape, model->params().param(s).f32()});
  load_named(hf, wanted);
  return model;
}

void save_hf_model(const Model& model, const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(fmt::format("[save] cannot create {}: {}", dir, ec.message()));
  const nlohmann::json j = config_to_hf_json(model.config());
  const std::string tmp = dir + "/config.json.tmp";
  {
    std::ofstream f(tmp);
    f << j.dump(2) << "\n";
    if (!f) throw Error(fmt::format("[save] cannot write {}", tmp));
  }
  fs::rename(tmp, dir + "/config.json");
  std::vector<NamedTensor> tensors;
  for (const ParamSpec& s : model.params().specs()) tensors.push_back({s.name, model.params().param(s)});
  write_safetensors(dir + "/model.safetensors", tensors, {{"format", "pt"}});
}

}  // namespace cs
