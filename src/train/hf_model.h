// Building a Model from a Hugging Face directory (config.json + safetensors weights), and writing
// a model back as one (config.json + model.safetensors). The glue between model/ (names, specs)
// and checkpoint/ (file formats); neither of those knows the other.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/model.h"

namespace cs {

// Reads DIR/config.json and the weights (model.safetensors or the sharded index). Every model
// parameter must be present with its exact shape and every stored tensor must be a parameter;
// F32, BF16 and F16 are converted to fp32. Activations are planned for (max_batch, max_seq),
// max_seq 0 meaning the config's length; the config's length is kept (extended if max_seq is longer).
// adjust, when given, changes the run-time choices of the config (activation recomputation)
// before the model is planned, and may refuse it (the memory check): nothing is allocated yet.
std::unique_ptr<Model> load_hf_model(const std::string& dir, Ctx& ctx, Group& tp, int64_t max_batch,
                                     int64_t max_seq, const std::function<void(ModelConfig&)>& adjust = {});
// The two halves of load_hf_model, for a caller that builds the model itself (a tensor-parallel
// shard, or a command that checks the memory first): DIR/config.json as load_hf_model reads it
// (the directory checked as there), without allocating the model; and DIR's weights into model
// (its shard's slice of each whole tensor). All three also read a Megatron-LM checkpoint root
// (torch format; train/megatron_source.h) as if it were the Hugging Face directory it converts
// to: the config from its saved arguments, the weights from its shards.
ModelConfig hf_model_config(const std::string& dir);
void load_hf_weights(const std::string& dir, Model& model);
// The file hf_model_config reads (DIR/config.json, or the Megatron file whose arguments it takes).
std::string hf_model_config_file(const std::string& dir);

struct HfExportOptions {
  DType dtype = DType::F32;                  // F32, BF16 (round to nearest even) or F16
  int64_t max_shard_bytes = 10LL << 30;      // Transformers' default "10GB"
  std::string tokenizer_dir;                 // tokenizer files copied from here when set
};

// Writes DIR/config.json and the weights: one model.safetensors, or model-0000i-of-0000n shards of
// at most max_shard_bytes with model.safetensors.index.json; tokenizer files copied when given.
void save_hf_model(const Model& model, const std::string& dir, const HfExportOptions& opt = {});

// The pieces of save_hf_model, shared with streaming conversion (train/convert.h) so both write
// the same directory. Parameters grouped in order into shards of at most max_shard_bytes in dtype:
std::vector<std::vector<size_t>> hf_shard_groups(const std::vector<ParamSpec>& specs, DType dtype,
                                                 int64_t max_shard_bytes);
// "model.safetensors" for one shard, else "model-0000k-of-0000n.safetensors" (k from 1).
std::string hf_shard_file(size_t k, size_t n);
// DIR/config.json (Baichuan's style, torch_dtype set) and, for several shards, the index json.
void write_hf_config(const std::string& dir, const ModelConfig& cfg, DType dtype);
void write_hf_index(const std::string& dir, const std::vector<ParamSpec>& specs,
                    const std::vector<std::vector<size_t>>& groups, DType dtype);
// Copies the tokenizer files found in TOKENIZER_DIR into DIR (a no-op for an empty path).
void copy_tokenizer_files(const std::string& tokenizer_dir, const std::string& dir);

// "10GB", "500MB", "2GiB", "1024" (bytes) -> bytes; a UsageError naming the flag otherwise.
int64_t parse_byte_size(const std::string& s, const char* flag);

}  // namespace cs
