#include "model/config.h"

#include <cmath>

#include <fmt/core.h>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace cs {

const char* position_name(PositionType p) { return p == PositionType::Rope ? "rope" : "alibi"; }

void ModelConfig::validate() const {
  auto need = [](bool ok, const std::string& msg) {
    if (!ok) throw UsageError("[model] " + msg);
  };
  need(vocab_size > 0, fmt::format("vocab size must be positive, got {}", vocab_size));
  need(hidden_size > 0 && num_heads > 0 && num_layers > 0 && ffn_hidden_size > 0,
       fmt::format("hidden size, ffn hidden size, heads and layers must be positive, got {}, {}, {}, {}",
                   hidden_size, ffn_hidden_size, num_heads, num_layers));
  need(hidden_size % num_heads == 0,
       fmt::format("--hidden-size {} is not divisible by --num-attention-heads {}", hidden_size, num_heads));
  need(position != PositionType::Rope || head_dim() % 2 == 0,
       fmt::format("RoPE needs an even head dim, got {} (hidden {} / heads {})", head_dim(), hidden_size, num_heads));
  need(max_seq_length > 0, fmt::format("sequence length must be positive, got {}", max_seq_length));
  need(rms_norm_eps > 0 && std::isfinite(rms_norm_eps),
       fmt::format("rms norm eps must be a positive number, got {}", rms_norm_eps));
  // rope_theta 0 (or inf, NaN) makes every rotation angle NaN: the run would train on NaN silently.
  need(position != PositionType::Rope || (rope_base > 0 && std::isfinite(rope_base)),
       fmt::format("rope_theta (the RoPE base) must be a positive number, got {}", rope_base));
  need(init_std >= 0 && std::isfinite(init_std),
       fmt::format("--init-method-std must be a number 0 or greater, got {}", init_std));
}

int64_t ModelConfig::num_params() const {
  const int64_t d = hidden_size, f = ffn_hidden_size;
  return 2 * vocab_size * d + d + num_layers * (4 * d * d + 3 * d * f + 2 * d);
}

std::string ModelConfig::summary() const {
  return fmt::format("{} layers, hidden {}, ffn {}, {} heads, vocab {}, {} positions, {:.2f}M params",
                     num_layers, hidden_size, ffn_hidden_size, num_heads, vocab_size,
                     position_name(position), double(num_params()) / 1e6);
}

ModelConfig model_preset(const std::string& name) {
  ModelConfig c;
  if (name == "baichuan-7b") {  // Baichuan-7B: LLaMA-7B shape, RoPE, 64000 vocab
    c = {64000, 4096, 11008, 32, 32, 4096, 1e-6, PositionType::Rope};
  } else if (name == "baichuan-13b") {  // Baichuan-13B: 40 heads, ALiBi
    c = {64000, 5120, 13696, 40, 40, 4096, 1e-6, PositionType::Alibi};
  } else if (name == "small") {  // the benchmark config (make bench)
    c = {32000, 512, 1376, 8, 8, 512, 1e-6, PositionType::Rope};
  } else if (name == "demo") {
    c = {1024, 128, 352, 4, 4, 128, 1e-6, PositionType::Rope};
  } else if (name == "tiny") {
    c = {101, 48, 80, 3, 2, 64, 1e-6, PositionType::Rope};
  } else {
    throw UsageError(fmt::format(
        "[model] unknown --model '{}'. Hint: use baichuan-7b, baichuan-13b, small, demo or tiny", name));
  }
  return c;
}

int64_t padded_vocab_size(int64_t vocab, int64_t divisible_by, int64_t tp) {
  const int64_t m = std::max<int64_t>(1, divisible_by) * std::max<int64_t>(1, tp);
  return (vocab + m - 1) / m * m;
}

ModelConfig config_from_hf_json(const nlohmann::json& j, const std::string& path) {
  auto get_int = [&](const char* key) -> int64_t {
    if (!j.contains(key) || !j[key].is_number_integer())
      throw Error(fmt::format("[config] {}: missing or non-integer '{}', expected an integer. "
                              "Hint: is this a Hugging Face Baichuan config.json?", path, key));
    return j[key].get<int64_t>();
  };
  // A number, or a one-line error naming the file and the key (nlohmann's own is "type_error.302").
  auto get_number = [&](const char* key) -> double {
    if (!j[key].is_number())
      throw Error(fmt::format("[config] {}: '{}' is {}, expected a number", path, key, j[key].dump()));
    return j[key].get<double>();
  };
  ModelConfig c;
  c.vocab_size = get_int("vocab_size");
  c.hidden_size = get_int("hidden_size");
  c.ffn_hidden_size = get_int("intermediate_size");
  c.num_heads = get_int("num_attention_heads");
  c.num_layers = get_int("num_hidden_layers");
  if (j.contains("rms_norm_eps")) c.rms_norm_eps = get_number("rms_norm_eps");
  if (j.contains("rope_theta")) c.rope_base = get_number("rope_theta");
  if (j.contains("initializer_range")) c.init_std = get_number("initializer_range");
  const bool has_mpe = j.contains("max_position_embeddings"), has_mml = j.contains("model_max_length");
  if (j.contains("position_embedding_type")) {
    if (!j["position_embedding_type"].is_string())
      throw Error(fmt::format("[config] {}: 'position_embedding_type' is {}, expected \"rope\" or \"alibi\"", path,
                              j["position_embedding_type"].dump()));
    const std::string p = j["position_embedding_type"].get<std::string>();
    if (p == "rope" || p == "rotary") c.position = PositionType::Rope;
    else if (p == "alibi") c.position = PositionType::Alibi;
    else
      throw Error(fmt::format("[config] {}: position_embedding_type '{}', expected rope or alibi", path, p));
  } else {
    c.position = (has_mml && !has_mpe) ? PositionType::Alibi : PositionType::Rope;
  }
  c.max_seq_length = has_mpe ? get_int("max_position_embeddings") : has_mml ? get_int("model_max_length") : 4096;
  if (j.contains("hidden_act") && j["hidden_act"] != "silu")
    throw Error(fmt::format("[config] {}: hidden_act {}, expected \"silu\"", path, j["hidden_act"].dump()));
  if (j.contains("tie_word_embeddings") && !j["tie_word_embeddings"].is_boolean())
    throw Error(fmt::format("[config] {}: 'tie_word_embeddings' is {}, expected true or false", path,
                            j["tie_word_embeddings"].dump()));
  if (j.value("tie_word_embeddings", false))
    throw Error(fmt::format("[config] {}: tie_word_embeddings true; Baichuan's lm_head is untied", path));
  try {
    c.validate();
  } catch (const Error& e) {  // a bad file, not a bad flag: name the file, exit status 1
    throw Error(fmt::format("[config] {}: {}", path, e.what()));
  }
  return c;
}

}  // namespace cs

namespace cs {

nlohmann::json config_to_hf_json(const ModelConfig& c) {
  nlohmann::ordered_json j;
  j["architectures"] = {"BaichuanForCausalLM"};
  j["model_type"] = "baichuan";
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.ffn_hidden_size;
  j["num_attention_heads"] = c.num_heads;
  j["num_hidden_layers"] = c.num_layers;
  j["vocab_size"] = c.vocab_size;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["hidden_act"] = "silu";
  j["initializer_range"] = c.init_std;
  j["tie_word_embeddings"] = false;
  j["torch_dtype"] = "float32";
  if (c.position == PositionType::Rope) {
    j["max_position_embeddings"] = c.max_seq_length;
    j["rope_theta"] = c.rope_base;
  } else {
    j["model_max_length"] = c.max_seq_length;
  }
  return nlohmann::json(j);
}

}  // namespace cs
