#include "cli/deepspeed_config.h"

#include <fmt/core.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/file_io.h"

namespace cs::cli {

namespace {
using nlohmann::json;

// The keys of `obj` not in `known`, as prefix.key.
void collect_unknown(const json& obj, const std::string& prefix, const std::set<std::string>& known,
                     std::vector<std::string>& out) {
  for (const auto& [k, v] : obj.items())
    if (!known.count(k)) out.push_back(prefix + k);
}

template <typename T>
std::optional<T> get(const json& obj, const char* key, const std::string& where, const std::string& path) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  const bool ok = std::is_same_v<T, bool> ? it->is_boolean() : it->is_number();
  if (!ok)
    throw Error(fmt::format("[deepspeed] {}: {}{} is {}; expected a {}", path, where, key, it->type_name(),
                            std::is_same_v<T, bool> ? "boolean" : "number"));
  return it->get<T>();
}
}  // namespace

DeepSpeedConfig read_deepspeed_config(const std::string& path) {
  require_regular_file(path, "deepspeed", "--deepspeed_config takes a JSON file");
  std::ifstream f(path);
  if (!f) throw Error(fmt::format("[deepspeed] --deepspeed_config {}: cannot open", path));
  std::stringstream ss;
  ss << f.rdbuf();
  const json j = json::parse(ss.str(), nullptr, false);
  if (j.is_discarded() || !j.is_object())
    throw Error(fmt::format("[deepspeed] {}: not a JSON object (a DeepSpeed config is one)", path));
  for (const char* key : {"optimizer", "fp16", "bf16", "zero_optimization"})
    if (j.contains(key) && !j[key].is_object())
      throw Error(fmt::format("[deepspeed] {}: {} is {}; expected an object", path, key, j[key].type_name()));
  if (j.contains("optimizer") && j["optimizer"].contains("params") && !j["optimizer"]["params"].is_object())
    throw Error(fmt::format("[deepspeed] {}: optimizer.params is {}; expected an object", path,
                            j["optimizer"]["params"].type_name()));
  if (j.contains("optimizer") && j["optimizer"].contains("type") && !j["optimizer"]["type"].is_string())
    throw Error(fmt::format("[deepspeed] {}: optimizer.type is {}; expected a string", path,
                            j["optimizer"]["type"].type_name()));
  DeepSpeedConfig c;
  // Keys that change nothing for chuanspeed: printing, DeepSpeed's own checks and bucket tuning.
  collect_unknown(j, "", {"train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps",
                          "optimizer", "fp16", "bf16", "zero_optimization", "gradient_clipping"},
                  c.unused_keys);
  c.train_batch_size = get<int64_t>(j, "train_batch_size", "", path);
  c.micro_batch_per_gpu = get<int64_t>(j, "train_micro_batch_size_per_gpu", "", path);
  c.gradient_accumulation_steps = get<int64_t>(j, "gradient_accumulation_steps", "", path);
  c.gradient_clipping = get<double>(j, "gradient_clipping", "", path);
  if (j.contains("optimizer")) {
    const json& o = j["optimizer"];
    const std::string type = o.value("type", "AdamW");
    if (type != "AdamW" && type != "Adam" && type != "adamw" && type != "adam")
      throw UsageError(fmt::format("--deepspeed_config {}: optimizer.type {}: expected Adam or AdamW (the optimizer "
                                   "chuanspeed runs)", path, type));
    collect_unknown(o, "optimizer.", {"type", "params"}, c.unused_keys);
    if (o.contains("params")) {
      const json& p = o["params"];
      collect_unknown(p, "optimizer.params.", {"lr", "betas", "eps", "weight_decay"}, c.unused_keys);
      if (p.contains("betas")) {
        if (!p["betas"].is_array() || p["betas"].size() != 2 || !p["betas"][0].is_number() || !p["betas"][1].is_number())
          throw Error(fmt::format("[deepspeed] {}: optimizer.params.betas: expected two numbers", path));
        c.beta1 = p["betas"][0].get<double>();
        c.beta2 = p["betas"][1].get<double>();
      }
      c.eps = get<double>(p, "eps", "optimizer.params.", path);
      c.weight_decay = get<double>(p, "weight_decay", "optimizer.params.", path);
    }
  }
  if (j.contains("fp16")) {
    const json& h = j["fp16"];
    collect_unknown(h, "fp16.", {"enabled", "loss_scale", "initial_scale_power", "loss_scale_window", "hysteresis",
                                 "min_loss_scale"}, c.unused_keys);
    c.fp16 = get<bool>(h, "enabled", "fp16.", path).value_or(false);
    if (c.fp16) {
      // DeepSpeed: 0 is the dynamic scale, any other value a constant one.
      const double fixed = get<double>(h, "loss_scale", "fp16.", path).value_or(0.0);
      if (fixed < 0 || !std::isfinite(fixed))
        throw UsageError(fmt::format("--deepspeed_config {}: fp16.loss_scale {}: expected 0 (dynamic) or a positive "
                                     "constant scale", path, h["loss_scale"].dump()));
      if (fixed > 0) c.static_loss_scale = fixed;
      if (const auto p = get<double>(h, "initial_scale_power", "fp16.", path)) c.initial_loss_scale = std::pow(2.0, *p);
      c.loss_scale_window = get<int64_t>(h, "loss_scale_window", "fp16.", path);
      c.hysteresis = get<int64_t>(h, "hysteresis", "fp16.", path);
      c.min_loss_scale = get<double>(h, "min_loss_scale", "fp16.", path);
    }
  }
  if (j.contains("bf16")) c.bf16 = get<bool>(j["bf16"], "enabled", "bf16.", path).value_or(false);
  if (j.contains("zero_optimization")) {
    const json& z = j["zero_optimization"];
    for (const char* off : {"offload_optimizer", "offload_param", "cpu_offload"})
      if (z.contains(off) && !z[off].is_null() && z[off] != false)
        throw UsageError(fmt::format("--deepspeed_config {}: zero_optimization.{}: offloading is not supported (the "
                                     "optimizer state stays with its rank)", path, off));
    collect_unknown(z, "zero_optimization.", {"stage", "offload_optimizer", "offload_param", "cpu_offload"},
                    c.unused_keys);
    c.zero_stage = int(get<int64_t>(z, "stage", "zero_optimization.", path).value_or(0));
    if (c.zero_stage < 0 || c.zero_stage > 2)
      throw UsageError(fmt::format("--deepspeed_config {}: zero_optimization.stage {}: expected 0, 1 or 2 (stage 3 "
                                   "also shards the parameters, which this program does not do)", path, c.zero_stage));
  }
  return c;
}

std::vector<std::string> apply_deepspeed_config(const DeepSpeedConfig& c, const std::string& path, TrainArgs& a) {
  if (c.train_batch_size && *c.train_batch_size != a.global_batch)
    throw UsageError(fmt::format("--deepspeed_config {}: train_batch_size {} disagrees with --global-batch-size {}; "
                                 "expected the same global batch", path, *c.train_batch_size, a.global_batch));
  if (c.micro_batch_per_gpu && *c.micro_batch_per_gpu != a.micro_batch)
    throw UsageError(fmt::format("--deepspeed_config {}: train_micro_batch_size_per_gpu {} disagrees with "
                                 "--micro-batch-size {}", path, *c.micro_batch_per_gpu, a.micro_batch));
  if (c.zero_stage >= 1) a.distributed_optimizer = true;
  if (c.beta1) a.adam.beta1 = *c.beta1;
  if (c.beta2) a.adam.beta2 = *c.beta2;
  if (c.eps) a.adam.eps = *c.eps;
  if (c.weight_decay && a.wd_incr != WdIncr::Constant)  // it would replace the increment's start unseen
    throw UsageError(fmt::format("--deepspeed_config {}: optimizer.params.weight_decay with --weight-decay-incr-style "
                                 "{}: one weight decay setting. Hint: leave weight_decay out of the config (the "
                                 "increment goes from --start-weight-decay to --end-weight-decay)", path,
                                 wd_incr_name(a.wd_incr)));
  if (c.weight_decay) a.adam.weight_decay = *c.weight_decay;
  if (c.gradient_clipping) a.clip_grad = *c.gradient_clipping;
  if (c.bf16) a.bf16 = true;
  if (c.fp16) {
    a.fp16 = true;
    if (c.initial_loss_scale) a.initial_loss_scale = *c.initial_loss_scale;
    if (c.static_loss_scale) a.static_loss_scale = *c.static_loss_scale;
    if (c.loss_scale_window) a.loss_scale_window = *c.loss_scale_window;
    if (c.hysteresis) a.hysteresis = *c.hysteresis;
    if (c.min_loss_scale) a.min_loss_scale = *c.min_loss_scale;
  }
  std::vector<std::string> notes;
  if (!c.unused_keys.empty()) {
    std::string keys;
    for (const std::string& k : c.unused_keys) keys += (keys.empty() ? "" : ", ") + k;
    notes.push_back(fmt::format("--deepspeed_config {}: keys with no effect here: {}", path, keys));
  }
  return notes;
}

}  // namespace cs::cli
