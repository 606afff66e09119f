// Parameters: one contiguous fp32 buffer (and one gradient buffer of the same layout) with named
// views. Every parameter carries its Hugging Face name and sharding spec, so ZeRO, all-reduce
// buckets, checkpoint I/O and conversion see one flat range and generic names.
// Order: embed_tokens; per layer input_layernorm, W_pack, o_proj, post_attention_layernorm,
// gate_proj, up_proj, down_proj (gate and up adjacent: one GEMM computes both); norm; lm_head.
#pragma once
#include <string>
#include <vector>

#include "core/buffer.h"
#include "model/config.h"

namespace cs {

// How tensor parallelism splits a parameter (Megatron's names).
enum class TpSplit {
  None,           // replicated (norm weights)
  Column,         // rows split: column-parallel linear (gate_proj, up_proj)
  ColumnQkvHeads, // W_pack: each rank holds its heads' q rows, k rows and v rows
  Row,            // columns split: row-parallel linear (o_proj, down_proj)
  Vocab,          // rows split over the vocabulary (embed_tokens, lm_head)
};

struct ParamSpec {
  std::string name;  // Hugging Face name, e.g. model.layers.3.self_attn.W_pack.weight
  Shape shape;
  int64_t offset = 0;  // elements from the start of the buffer
  TpSplit split = TpSplit::None;
  int layer = -1;      // decoder layer, or -1 (embedding: first stage) / -2 (norm, head: last)
  bool is_norm = false;  // no weight decay (Megatron skips norms and biases)
  double init_std = 0;   // 0: initialised to ones
};

// The six weights of one decoder layer.
struct LayerWeights {
  Tensor ln1, wpack, wo, ln2, wgu, wdown;  // wgu: (2F, D) view over gate_proj then up_proj
};

struct ModelWeights {
  Tensor embed, norm, head;
  std::vector<LayerWeights> layers;
};

// The parameter specs of a config (names, shapes, offsets, splits) without allocating anything:
// what conversion and checkpoint tools use to know the model's tensors.
std::vector<ParamSpec> param_specs(const ModelConfig& cfg);

class ParamStore {
 public:
  explicit ParamStore(const ModelConfig& cfg);
  const std::vector<ParamSpec>& specs() const { return specs_; }
  int64_t numel() const { return numel_; }
  // Views into the parameter (or gradient) buffer.
  const ModelWeights& weights() const { return w_; }
  const ModelWeights& grads() const { return g_; }
  Tensor param(const ParamSpec& s) const { return Tensor(params_.f32() + s.offset, s.shape); }
  Tensor grad(const ParamSpec& s) const { return Tensor(grads_.f32() + s.offset, s.shape); }
  Tensor flat_params() const { return Tensor(params_.f32(), {numel_}); }
  Tensor flat_grads() const { return Tensor(grads_.f32(), {numel_}); }
  // The spec with this name, or nullptr.
  const ParamSpec* find(const std::string& name) const;
  // Layout-invariant init: element e of parameter p is N(0, std_p) from Philox keyed by
  // (seed, p.name) at counter e; norm weights are 1.
  void init(uint64_t seed);

 private:
  ModelWeights views(const Buffer& b) const;
  std::vector<ParamSpec> specs_;
  int64_t numel_ = 0;
  Buffer params_, grads_;
  ModelWeights w_, g_;
};

}  // namespace cs
