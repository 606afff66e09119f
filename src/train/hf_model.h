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
// F32, BF16 and F16 are converted to fp32. max_seq 0 means the config's length.
std::unique_ptr<Model> load_hf_model(const std::string& dir, const Ops& ops, Group& tp,
                                     int64_t max_batch, int64_t max_seq);

// Writes DIR/config.json and DIR/model.safetensors (F32) for the model's weights.
void save_hf_model(const Model& model, const std::string& dir);

}  // namespace cs
