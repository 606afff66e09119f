// HfWeights: a Hugging Face model directory (config.json + model.safetensors or pytorch_model.bin,
// or the shards listed in their index.json), every shard mapped once and held as a WeightFile.
// load_named copies exactly the wanted tensors into float destinations and fails on any missing,
// misshapen or unexpected tensor, so a conversion can never silently drop or invent a weight.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "checkpoint/safetensors.h"
#include "checkpoint/weight_file.h"

namespace cs {

class HfWeights {
 public:
  // Opens DIR: reads config.json, then the first of model.safetensors,
  // model.safetensors.index.json (+ its shards), pytorch_model.bin, pytorch_model.bin.index.json
  // (+ its shards) that exists. Throws cs::Error "[load] DIR: ..." on bad input.
  explicit HfWeights(const std::string& dir);
  // The same, as a factory.
  static HfWeights open(const std::string& dir) { return HfWeights(dir); }

  // The directory, as given to open().
  const std::string& dir() const { return dir_; }
  // All tensor names: header order for one file, weight_map order for a sharded checkpoint.
  const std::vector<std::string>& names() const { return names_; }
  // Whether any file holds a tensor of that name.
  bool has(const std::string& name) const { return shard_of_.count(name) != 0; }
  // The tensor's shape; throws cs::Error naming the tensor if missing.
  Shape shape(const std::string& name) const { return file_of(name).shape(name); }
  // The tensor's dtype; throws cs::Error naming the tensor if missing.
  DType dtype(const std::string& name) const { return file_of(name).dtype(name); }
  // Copies the tensor to DST as float (COUNT must equal its element count).
  void read_f32(const std::string& name, float* dst, int64_t count) const {
    file_of(name).read_f32(name, dst, count);
  }
  // Copies rows [ROW_BEGIN, ROW_END) of the tensor's leading dimension to DST as float.
  void read_f32_rows(const std::string& name, int64_t row_begin, int64_t row_end,
                     float* dst) const {
    file_of(name).read_f32_rows(name, row_begin, row_end, dst);
  }
  // The file that holds the tensor; throws cs::Error naming the tensor if missing.
  const WeightFile& file_of(const std::string& name) const;
  // The parsed config.json (always a JSON object).
  const nlohmann::json& config() const { return config_; }

 private:
  void open_single(const std::string& file);
  void open_index(const std::string& index);

  std::string dir_;
  nlohmann::json config_;
  std::vector<std::unique_ptr<WeightFile>> files_;
  std::vector<std::string> names_;
  std::unordered_map<std::string, size_t> shard_of_;  // name -> index into files_
};

// Opens one weight file by its name: "*.bin" as a torch.save zip (TorchBinFile), anything else as
// safetensors. Throws the reader's cs::Error on bad input.
std::unique_ptr<WeightFile> open_weight_file(const std::string& path);

// One destination for load_named: the checkpoint name, the shape the model expects, and
// shape.numel() floats to fill.
struct ParamRef {
  std::string name;
  Shape shape;
  float* dst = nullptr;
};

// Whether a checkpoint tensor is a buffer that HF checkpoints carry but models recompute
// (names ending in "rotary_emb.inv_freq"); load_named skips these.
bool is_ignored_hf_buffer(const std::string& name);

// Fills every WANTED destination from W. Before copying anything it checks that each wanted name
// exists with exactly the wanted shape and a float dtype, and that every tensor in the files is
// wanted (except ignored buffers); any violation throws cs::Error naming the tensor(s).
void load_named(const HfWeights& w, const std::vector<ParamRef>& wanted);

// load_named's checks alone (destinations unused, may be null): what a streaming converter runs
// before it writes anything.
void check_named(const HfWeights& w, const std::vector<ParamRef>& wanted);

}  // namespace cs
