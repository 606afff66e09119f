// Streaming checkpoint conversion (`chuanspeed convert`): Hugging Face directory <-> native
// checkpoint, native -> native under another TP/PP layout, HF -> HF in another dtype, a Megatron-LM
// checkpoint (train/megatron_source.h) -> either. Tensor by
// tensor, a chunk of rows at a time: read from the mapped input (pages dropped after use),
// converted, appended to output files whose headers are written up front. Peak memory is a few
// chunks (64 MB of fp32), never a tensor, let alone the model. The whole input is checked against
// the config before the first byte is written.
#pragma once
#include <cstdint>
#include <string>

#include "core/tensor.h"
#include "model/config.h"

namespace cs {

struct ConvertOptions {
  std::string input, output;
  std::string to;                        // "native" or "hf"; empty: the other format than the input's
  DType dtype = DType::F32;              // Hugging Face output: F32, BF16 or F16 (native is always F32)
  int64_t max_shard_bytes = 10LL << 30;  // largest Hugging Face shard
  std::string tokenizer_dir;             // tokenizer files copied into a Hugging Face output
  std::string type;                      // AscendSpeed's converter's --type 7B|13B: checked against the input
  int64_t tp = 1, pp = 1;                // native output layout
  // Megatron's --make-vocab-size-divisible-by: the vocabulary is padded to a multiple of this x tp
  // (the embedding's and lm_head's new rows copy the last row, as Megatron's checkpoint saver does);
  // 0: kept as it is.
  int64_t divisible_by = 0;
  // fp32 bytes read from the input per step: large enough for full-speed sequential I/O, small
  // enough that the resident set stays far below any real tensor (tests use tiny chunks).
  int64_t chunk_bytes = int64_t(64) << 20;
};

struct ConvertReport {
  std::string from, to;  // "hf" / "native" (to); "megatron" too (from)
  ModelConfig config;
  size_t tensors = 0, files = 0;
  int64_t bytes_read = 0, bytes_written = 0;
  double seconds = 0;
};

// Converts; prints a progress line per tensor group (embedding, each layer, head) to stderr.
// Bad input (missing, unexpected or misshapen tensors, a layout that does not divide the model,
// a --type the input is not) throws before anything is written.
ConvertReport convert_checkpoint(const ConvertOptions& opt);

}  // namespace cs
