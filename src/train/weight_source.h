// WeightSource: the weights of a Hugging Face directory or a native checkpoint, read a few rows
// at a time for streaming conversion. Both kinds check the whole checkpoint against the model's
// parameter specs before anything is read (every parameter present with its shape, nothing
// unexpected), and drop the pages they read from the process's map, so the resident set stays one
// chunk however large the checkpoint.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "model/params.h"

namespace cs {

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  // Opens DIR: a native checkpoint root (its latest iteration), a Megatron-LM checkpoint root
  // (torch format, its latest iteration; train/megatron_source.h) or a Hugging Face directory.
  static std::unique_ptr<WeightSource> open(const std::string& dir);
  // "native", "megatron" or "hf".
  virtual const char* kind() const = 0;
  // The architecture, from config.json or meta.json, and that file's path.
  virtual const ModelConfig& config() const = 0;
  virtual std::string config_file() const = 0;
  // How many tensors the files hold (a native checkpoint's optimizer state included).
  virtual int64_t stored_tensors() const = 0;
  // Throws cs::Error naming the tensor unless the checkpoint holds exactly SPECS (names and
  // global shapes; float dtypes), ignoring HF's rotary inv_freq buffers and native optimizer state.
  virtual void check(const std::vector<ParamSpec>& specs) const = 0;
  // Rows [r0, r1) of the tensor's leading dimension, full width, as float (1-D: elements).
  virtual void read_rows(const ParamSpec& s, int64_t r0, int64_t r1, float* dst) const = 0;
  // The bytes the tensor occupies in the input files (for throughput figures).
  virtual int64_t stored_bytes(const ParamSpec& s) const = 0;
};

}  // namespace cs
