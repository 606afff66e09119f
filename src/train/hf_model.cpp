#include "train/hf_model.h"

#include <fmt/core.h>

#include <cctype>
#include <filesystem>
#include <map>
#include <optional>
#include <fstream>
#include <nlohmann/json.hpp>

#include "backend/host_copy.h"
#include "checkpoint/hf_dir.h"
#include "checkpoint/megatron.h"
#include "checkpoint/safetensors.h"
#include "core/file_io.h"
#include "core/half.h"
#include "train/megatron_source.h"

namespace cs {

namespace {
// The tensor's values in dtype t (conversion buffer kept in `store`).
Tensor converted(const Tensor& src, DType t, std::vector<uint16_t>& store) {
  if (t == DType::F32) return src;
  store.resize(size_t(src.numel()));
  const float* p = src.f32();
  for (int64_t i = 0; i < src.numel(); ++i) store[size_t(i)] = t == DType::BF16 ? f32_to_bf16(p[i]) : f32_to_f16(p[i]);
  return Tensor(store.data(), src.shape, t);
}

const char* torch_dtype_name(DType t) {
  return t == DType::BF16 ? "bfloat16" : t == DType::F16 ? "float16" : "float32";
}
}  // namespace

ModelConfig hf_model_config(const std::string& dir) {
  if (is_megatron_checkpoint(dir)) return open_megatron_source(dir)->config();
  HfWeights hf(dir);
  return config_from_hf_json(hf.config(), dir + "/config.json");
}

std::string hf_model_config_file(const std::string& dir) {
  return is_megatron_checkpoint(dir) ? open_megatron_source(dir)->config_file() : dir + "/config.json";
}

namespace {
// Fills MODEL's parameters from READ_WHOLE(spec, dst), which writes a parameter's whole tensor
// (its global shape) as float; a tensor-parallel slice is cut from it.
void fill_params(Model& model, const std::function<void(const ParamSpec&, float*)>& read_whole) {
  const ParamStore& ps = model.params();
  Ctx& ctx = model.ctx();
  // bf16 / f16 parameters (a compute copy) are filled from f32 values rounded once, as Megatron
  // loads a half-precision model; the optimizer's master weights are then made from them.
  const bool f32 = ps.param_dtype() == DType::F32;
  std::optional<HostCopy> h;
  std::vector<float> staged;
  Tensor host;
  if (f32) {
    h.emplace(ctx, ps.flat_params(), HostCopy::kWrite);
    host = h->host_tensor();
  } else {
    staged.resize(size_t(ps.numel()));
    host = Tensor(staged.data(), {ps.numel()});
  }
  std::vector<float> whole;  // a tensor-parallel slice is cut from the whole tensor
  for (const ParamSpec& s : ps.specs()) {
    float* dst = host.slice_rows(s.offset, s.offset + s.shape.numel()).f32();
    if (s.shape == s.global_shape) {
      read_whole(s, dst);
      continue;
    }
    whole.resize(size_t(s.global_shape.numel()));
    read_whole(s, whole.data());
    take_shard_slice(s, ps.shard(), model.config().hidden_size, whole.data(), dst);
  }
  if (f32) {
    h->flush();
    return;
  }
  std::vector<uint16_t> half;
  const Tensor rounded = converted(host, ps.param_dtype(), half);
  ctx.backend.upload(ctx, rounded.data, ps.flat_params());
}
}  // namespace

void load_hf_weights(const std::string& dir, Model& model) {
  if (is_megatron_checkpoint(dir)) {
    const auto src = open_megatron_source(dir);
    src->check(param_specs(model.config()));
    fill_params(model, [&](const ParamSpec& s, float* dst) {
      ParamSpec whole = s;
      whole.shape = s.global_shape;
      src->read_rows(whole, 0, whole.shape[0], dst);  // 1-D: rows are elements
    });
    return;
  }
  HfWeights hf(dir);
  // Every tensor checked against the whole model's names and shapes before anything is read.
  std::vector<ParamRef> all;
  for (const ParamSpec& s : param_specs(model.config())) all.push_back({s.name, s.shape, nullptr});
  check_named(hf, all);
  fill_params(model, [&](const ParamSpec& s, float* dst) { hf.read_f32(s.name, dst, s.global_shape.numel()); });
}

std::unique_ptr<Model> load_hf_model(const std::string& dir, Ctx& ctx, Group& tp, int64_t max_batch,
                                     int64_t max_seq, const std::function<void(ModelConfig&)>& adjust) {
  ModelConfig cfg = hf_model_config(dir);
  // Activations are planned for max_seq; the config keeps its own length (extended only when a
  // longer sequence is asked for), so a model written back out has the positions it came with.
  cfg.max_seq_length = std::max(cfg.max_seq_length, max_seq);
  if (adjust) adjust(cfg);
  auto model = std::make_unique<Model>(cfg, ctx, tp, max_batch, max_seq > 0 ? max_seq : cfg.max_seq_length);
  load_hf_weights(dir, *model);
  return model;
}


int64_t parse_byte_size(const std::string& s, const char* flag) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  std::string unit = s.substr(used);
  for (auto& ch : unit) ch = char(std::toupper(static_cast<unsigned char>(ch)));
  const std::map<std::string, double> units = {{"", 1}, {"B", 1}, {"KB", 1e3}, {"MB", 1e6},
      {"GB", 1e9}, {"KIB", 1024.0}, {"MIB", 1048576.0}, {"GIB", 1073741824.0}};
  auto it = units.find(unit);
  // NaN, infinities and sizes past int64 would make the cast below undefined; below 1 byte is 0.
  const double bytes = it == units.end() ? 0 : v * it->second;
  if (used == 0 || it == units.end() || !(bytes >= 1 && bytes < 9.2e18))
    throw UsageError(fmt::format("{} {}: expected a size such as 10GB, 500MB or 2GiB", flag, s));
  return int64_t(bytes);
}

std::vector<std::vector<size_t>> hf_shard_groups(const std::vector<ParamSpec>& specs, DType dtype,
                                                 int64_t max_shard_bytes) {
  std::vector<std::vector<size_t>> shards(1);
  int64_t bytes = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    const int64_t b = specs[i].shape.numel() * int64_t(dtype_size(dtype));
    if (!shards.back().empty() && bytes + b > max_shard_bytes) {
      shards.emplace_back();
      bytes = 0;
    }
    shards.back().push_back(i);
    bytes += b;
  }
  return shards;
}

std::string hf_shard_file(size_t k, size_t n) {
  return n == 1 ? "model.safetensors" : fmt::format("model-{:05d}-of-{:05d}.safetensors", k + 1, n);
}

void write_hf_config(const std::string& dir, const ModelConfig& cfg, DType dtype) {
  nlohmann::json j = config_to_hf_json(cfg);
  j["torch_dtype"] = torch_dtype_name(dtype);
  write_file_atomic(dir + "/config.json", j.dump(2) + "\n", "save");
}

void write_hf_index(const std::string& dir, const std::vector<ParamSpec>& specs,
                    const std::vector<std::vector<size_t>>& groups, DType dtype) {
  if (groups.size() < 2) return;
  nlohmann::ordered_json weight_map;
  int64_t total = 0;
  for (size_t k = 0; k < groups.size(); ++k)
    for (size_t i : groups[k]) {
      weight_map[specs[i].name] = hf_shard_file(k, groups.size());
      total += specs[i].shape.numel() * int64_t(dtype_size(dtype));
    }
  nlohmann::ordered_json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  write_file_atomic(dir + "/model.safetensors.index.json", index.dump(2) + "\n", "save");
}

void copy_tokenizer_files(const std::string& tokenizer_dir, const std::string& dir) {
  namespace fs = std::filesystem;
  if (tokenizer_dir.empty()) return;
  for (const char* name : {"tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
                           "tokenization_baichuan.py"}) {
    const fs::path src = fs::path(tokenizer_dir) / name;
    if (fs::exists(src)) fs::copy_file(src, fs::path(dir) / name, fs::copy_options::overwrite_existing);
  }
}

void save_hf_model(const Model& model, const std::string& dir, const HfExportOptions& opt) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(fmt::format("[save] cannot create {}: {}", dir, ec.message()));
  write_hf_config(dir, model.config(), opt.dtype);
  const ParamStore& ps = model.params();
  const auto& specs = ps.specs();
  const auto shards = hf_shard_groups(specs, opt.dtype, opt.max_shard_bytes);
  // The parameters as f32 on the host (bf16 / f16 ones, the compute copy, widened exactly).
  HostCopy h(model.ctx(), ps.flat_params(), HostCopy::kRead);
  std::vector<float> widened;
  Tensor host = h.host_tensor();
  if (ps.param_dtype() != DType::F32) {
    widened.resize(size_t(ps.numel()));
    const uint16_t* p = static_cast<const uint16_t*>(h.data());
    for (int64_t i = 0; i < ps.numel(); ++i)
      widened[size_t(i)] = ps.param_dtype() == DType::BF16 ? bf16_to_f32(p[i]) : f16_to_f32(p[i]);
    host = Tensor(widened.data(), {ps.numel()});
  }
  for (size_t k = 0; k < shards.size(); ++k) {
    std::vector<std::vector<uint16_t>> store(shards[k].size());
    std::vector<NamedTensor> tensors;
    for (size_t n = 0; n < shards[k].size(); ++n) {
      const ParamSpec& s = specs[shards[k][n]];
      const Tensor p = host.slice_rows(s.offset, s.offset + s.shape.numel()).view(s.shape);
      tensors.push_back({s.name, converted(p, opt.dtype, store[n])});
    }
    write_safetensors(dir + "/" + hf_shard_file(k, shards.size()), tensors, {{"format", "pt"}});
  }
  write_hf_index(dir, specs, shards, opt.dtype);
  copy_tokenizer_files(opt.tokenizer_dir, dir);
}

}  // namespace cs
