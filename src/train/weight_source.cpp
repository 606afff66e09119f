#include "train/weight_source.h"

#include <fmt/core.h>

#include <unordered_set>

#include "checkpoint/hf_dir.h"
#include "checkpoint/megatron.h"
#include "checkpoint/native.h"
#include "checkpoint/safetensors_stream.h"
#include "core/error.h"
#include "train/megatron_source.h"

namespace cs {

namespace {

class HfSource : public WeightSource {
 public:
  explicit HfSource(const std::string& dir)
      : dir_(dir), hf_(dir), config_(config_from_hf_json(hf_.config(), dir + "/config.json")) {}
  const char* kind() const override { return "hf"; }
  const ModelConfig& config() const override { return config_; }
  std::string config_file() const override { return dir_ + "/config.json"; }
  int64_t stored_tensors() const override { return int64_t(hf_.names().size()); }
  void check(const std::vector<ParamSpec>& specs) const override {
    std::vector<ParamRef> wanted;
    for (const ParamSpec& s : specs) wanted.push_back({s.name, s.shape, nullptr});
    check_named(hf_, wanted);
  }
  void read_rows(const ParamSpec& s, int64_t r0, int64_t r1, float* dst) const override {
    const WeightFile& f = hf_.file_of(s.name);
    f.read_f32_rows(s.name, r0, r1, dst);
    const Tensor view = f.tensor(s.name);
    const size_t row_bytes = size_t(s.shape.numel() / s.shape[0]) * dtype_size(view.dtype);
    drop_mapped_pages(static_cast<const uint8_t*>(view.data) + size_t(r0) * row_bytes, size_t(r1 - r0) * row_bytes);
  }
  int64_t stored_bytes(const ParamSpec& s) const override {
    return s.shape.numel() * int64_t(dtype_size(hf_.dtype(s.name)));
  }

 private:
  std::string dir_;
  HfWeights hf_;
  ModelConfig config_;
};

class NativeSource : public WeightSource {
 public:
  NativeSource(const std::string& root, int64_t iteration) : r_(root, iteration) {
    if (!r_.meta().contains("config"))
      throw Error(fmt::format("[checkpoint] {}/meta.json: no model config", r_.dir()));
    config_ = config_from_hf_json(r_.meta()["config"], r_.dir() + "/meta.json");
  }
  const char* kind() const override { return "native"; }
  const ModelConfig& config() const override { return config_; }
  std::string config_file() const override { return r_.dir() + "/meta.json"; }
  int64_t stored_tensors() const override { return int64_t(r_.names().size()); }
  void check(const std::vector<ParamSpec>& specs) const override {
    std::unordered_set<std::string> want;
    for (const ParamSpec& s : specs) {
      want.insert(s.name);
      if (!r_.has(s.name))
        throw Error(fmt::format("[checkpoint] {}: missing tensor {}. Hint: meta.json's config does not "
                                "describe these shards (a checkpoint of another model size?)", r_.dir(), s.name));
      const Shape g = r_.global_shape(s.name);
      if (g != s.shape)
        throw Error(fmt::format("[checkpoint] {}: tensor {} has shape {}, expected {} from meta.json's config. "
                                "Hint: the config and the shards disagree (a checkpoint of another model size?)",
                                r_.dir(), s.name, g.str(), s.shape.str()));
      const int64_t held = r_.stored_elements(s.name);
      if (held != g.numel())
        throw Error(fmt::format("[checkpoint] {}: the shards hold {} of the {} elements of {} ({}). Hint: "
                                "copy the checkpoint folder complete, every model-tp*-pp*.safetensors",
                                r_.dir(), held, g.numel(), s.name,
                                held < g.numel() ? "a shard is missing" : "overlapping shards"));
    }
    for (const std::string& n : r_.names())
      if (!want.count(n) && !n.starts_with("exp_avg.") && !n.starts_with("exp_avg_sq."))
        throw Error(fmt::format("[checkpoint] {}: unexpected tensor {}, not a parameter of the model meta.json "
                                "describes. Hint: the config and the shards disagree", r_.dir(), n));
  }
  void read_rows(const ParamSpec& s, int64_t r0, int64_t r1, float* dst) const override {
    std::vector<int64_t> off(size_t(s.shape.ndim), 0);
    off[0] = r0;
    Shape box = s.shape;
    box.dims[0] = r1 - r0;
    r_.read(s.name, off, box, dst);
  }
  int64_t stored_bytes(const ParamSpec& s) const override { return s.shape.numel() * 4; }

 private:
  CheckpointReader r_;
  ModelConfig config_;
};

}  // namespace

std::unique_ptr<WeightSource> WeightSource::open(const std::string& dir) {
  if (is_megatron_checkpoint(dir)) return open_megatron_source(dir);
  if (!is_native_checkpoint(dir)) {
    check_not_an_iteration_folder(dir);
    return std::make_unique<HfSource>(dir);
  }
  const int64_t it = latest_iteration(dir);
  return std::make_unique<NativeSource>(dir, it);
}

}  // namespace cs
