// ModelConfig: the architecture of a Baichuan-family decoder (LLaMA-style: RMSNorm, fused W_pack
// QKV, SwiGLU MLP, untied lm_head) with RoPE (Baichuan-7B) or ALiBi (Baichuan-13B) positions.
// Filled from a preset, overridden by Megatron flags, or read from a Hugging Face config.json.
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <cstdint>
#include <string>

namespace cs {

enum class PositionType { Rope, Alibi };

struct ModelConfig {
  int64_t vocab_size = 0;       // rows of embed_tokens / lm_head (already padded)
  int64_t hidden_size = 0;      // D
  int64_t ffn_hidden_size = 0;  // F (HF intermediate_size)
  int64_t num_heads = 0;        // H
  int64_t num_layers = 0;       // L
  int64_t max_seq_length = 0;   // longest sequence the model is used with
  double rms_norm_eps = 1e-6;
  PositionType position = PositionType::Rope;
  double rope_base = 10000.0;
  double init_std = 0.02;       // Megatron --init-method-std
  bool recompute = false;       // --recompute-granularity full: keep only each block's input
  int64_t recompute_num_layers = -1;  // with recompute: only the first N layers of each stage
                                      // (Megatron's --recompute-method block); -1: every layer

  int64_t head_dim() const { return hidden_size / num_heads; }
  // Throws cs::Error naming the first inconsistent field.
  void validate() const;
  // One line: "L layers, D hidden, ... (N params)".
  std::string summary() const;
  // Parameters in the model (all matrices and norms).
  int64_t num_params() const;
};

// A named preset: baichuan-7b, baichuan-13b, tiny (tests), demo (the bundled demo), small (bench).
// Unknown names are a usage error listing the known ones.
ModelConfig model_preset(const std::string& name);

// Reads a Hugging Face Baichuan/LLaMA config.json (already parsed). The position type is the
// `position_embedding_type` key if present; else `model_max_length` without
// `max_position_embeddings` means ALiBi (how Baichuan-13B's config reads); else RoPE.
// `path` is used in error messages only.
ModelConfig config_from_hf_json(const nlohmann::json& j, const std::string& path);

// The vocabulary padded as Megatron pads it: up to a multiple of divisible_by * tp.
int64_t padded_vocab_size(int64_t vocab, int64_t divisible_by, int64_t tp);

const char* position_name(PositionType p);

// The config as a Hugging Face Baichuan config.json reads (RoPE: max_position_embeddings, as
// Baichuan-7B's; ALiBi: model_max_length only, as Baichuan-13B's); config_from_hf_json inverts it.
nlohmann::json config_to_hf_json(const ModelConfig& c);

}  // namespace cs
