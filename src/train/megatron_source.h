// A Megatron-LM checkpoint (torch format, checkpoint/megatron.h) as a WeightSource: its tensors
// under our (Hugging Face) names and whole shapes, read across its tensor-parallel shards and
// pipeline stages, and the model config from its saved arguments. Megatron-core's names
// (decoder.layers.N.self_attention.linear_qkv.weight, ...) and the legacy model's
// (language_model.encoder.layers.N.self_attention.query_key_value.weight, ...) are both read; the
// layouts are Megatron's: the fused QKV interleaved per head ([q_h; k_h; v_h] for each head h of
// the rank), the SwiGLU input projection [gate; up] per rank, vocabulary rows split by rank.
// Only what ChuanSpeed's model is (RMSNorm, SwiGLU, RoPE or ALiBi, no biases, untied output
// layer, as many key/value heads as heads) is accepted; anything else is one line naming the
// argument or tensor.
#pragma once
#include <memory>
#include <string>

#include "train/weight_source.h"

namespace cs {

std::unique_ptr<WeightSource> open_megatron_source(const std::string& root);

// What a run loading ROOT needs before the model is built: the iteration it was saved at and
// whether it is a release (Megatron starts a release at iteration 0 without its optimizer).
struct MegatronCheckpointPosition {
  int64_t iteration = 0;
  bool release = false;
};
MegatronCheckpointPosition megatron_checkpoint_position(const std::string& root);
// What `train --load ROOT` (and `plan`) may take of it: a release, or any iteration's weights
// under --finetune. Otherwise a UsageError: Megatron would resume that iteration with its
// optimizer state and data position, which are not read here.
MegatronCheckpointPosition check_megatron_load(const std::string& root, bool finetune);

}  // namespace cs
