// Building a Model from a Hugging Face directory (config.json + safetensors weights), and writing
// a model back as one (config.json + model.safetensors). The glue between model/ (names, specs)
// and checkpoint/ (file formats); neither of those knows the other.
#pragma once
#include <memory>
#include <string>

#include "model/model.h"

namespace cs {

// Reads DIR/config.json and the weights (model.safetensors or the sharded index). Every model
// parameter must be present with its exact shape and every stored tensor must be a parameter;
// F32, BF16 and F16 are converted to fp32. Activations are planned for (max_batch, max_seq),
// max_seq 0 meaning the config's length; the config's length is kept (extended if max_seq is longer).
std::unique_ptr<Model> load_hf_model(const std::string& dir, const Ops& ops, Group& tp,
                                     int64_t max_batch, int64_t max_seq);

struct HfExportOptions {
  DType dtype = DType::F32;                  // F32, BF16 (round to nearest even) or F16
  int64_t max_shard_bytes = 10LL << 30;      // Transformers' default "10GB"
  std::string tokenizer_dir;                 // tokenizer files copied from here when set
};

// Writes DIR/config.json and the weights: one model.safetensors, or model-0000i-of-0000n shards of
// at most max_shard_bytes with model.safetensors.index.json; tokenizer files copied when given.
void save_hf_model(const Model& model, const std::string& dir, const HfExportOptions& opt = {});

// "10GB", "500MB", "2GiB", "1024" (bytes) -> bytes; a UsageError naming the flag otherwise.
int64_t parse_byte_size(const std::string& s, const char* flag);

}  // namespace cs
