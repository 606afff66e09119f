#include "model/config.h"

#include <climits>
#include <cmath>

#include <fmt/core.h>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace cs {

const char* position_name(PositionType p) { return p == PositionType::Rope ? "rope" : "alibi"; }

namespace {
// 2 V D + D + L (4 D^2 + 3 D F + 2 D), or false when it does not fit int64: the sizes come from
// files and flags, and a wrapped count is worse than none.
bool count_params(const ModelConfig& c, int64_t* out) {
  const int64_t v = c.vocab_size, d = c.hidden_size, f = c.ffn_hidden_size, l = c.num_layers;
  int64_t dd, df, layer, layers, vd, total;
  return !__builtin_mul_overflow(d, d, &dd) && !__builtin_mul_overflow(dd, 4, &dd) &&
         !__builtin_mul_overflow(d, f, &df) && !__builtin_mul_overflow(df, 3, &df) &&
         !__builtin_add_overflow(dd, df, &layer) && !__builtin_add_overflow(layer, 2 * d, &layer) &&
         !__builtin_mul_overflow(layer, l, &layers) && !__builtin_mul_overflow(v, d, &vd) &&
         !__builtin_mul_overflow(vd, 2, &vd) && !__builtin_add_overflow(vd, d, &total) &&
         !__builtin_add_overflow(total, layers, out);
}
// The most parameters a model may have: 16 bytes each (weights, gradients, Adam's m and v) must
// still be a 64-bit byte count. No machine comes near it; it keeps every size derived from the
// config (bytes, offsets, elements of one tensor) free of overflow.
constexpr int64_t kMaxParams = INT64_MAX / 16;
}  // namespace

void ModelConfig::validate() const {
  auto need = [](bool ok, const std::string& msg) {
    if (!ok) throw UsageError("[model] " + msg);
  };
  need(vocab_size > 0, fmt::format("vocab size must be positive, got {}", vocab_size));
  need(hidden_size > 0 && num_heads > 0 && num_layers > 0 && ffn_hidden_size > 0,
       fmt::format("hidden size, ffn hidden size, heads and layers must be positive, got {}, {}, {}, {}",
                   hidden_size, ffn_hidden_size, num_heads, num_layers));
  // Sizes from a file or flags can be anything: first that they can be counted at all.
  int64_t params = 0;
  need(vocab_size <= INT32_MAX, fmt::format("vocab size {} is more than 2147483647: token ids are 32-bit (the model's "
                                            "inputs and Megatron's datasets)", vocab_size));
  need(count_params(*this, &params) && params <= kMaxParams,
       fmt::format("vocab size {}, hidden size {}, ffn hidden size {} and {} layers make more than {:.3g} parameters, "
                   "beyond any machine (their count overflows 64-bit sizes); expected a model's sizes",
                   vocab_size, hidden_size, ffn_hidden_size, num_layers, double(kMaxParams)));
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
  int64_t n = 0;
  CS_CHECK(count_params(*this, &n)) << "num_params of an unvalidated config: vocab " << vocab_size << ", hidden "
                                     << hidden_size << ", ffn " << ffn_hidden_size << ", layers " << num_layers;
  return n;
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
  int64_t m = 0, up = 0;
  if (__builtin_mul_overflow(std::max<int64_t>(1, divisible_by), std::max<int64_t>(1, tp), &m) ||
      __builtin_add_overflow(vocab, m - 1, &up))
    throw UsageError(fmt::format("[model] vocab size {} padded to a multiple of --make-vocab-size-divisible-by {} x "
                                 "tensor-parallel size {} overflows a 64-bit count; expected sizes of a real model",
                                 vocab, divisible_by, tp));
  return up / m * m;
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
