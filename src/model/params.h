// Parameters: one contiguous buffer (and one gradient buffer of the same layout) with named views,
// allocated through the backend. Every parameter carries its Hugging Face name, its kind and
// layer, and its sharding spec, so ZeRO, all-reduce buckets, checkpoint I/O and conversion see
// one flat range and generic names. A store holds one model shard: a contiguous range of decoder
// layers (with or without the embedding, with or without the final norm and lm_head) of one
// tensor-parallel rank, at that rank's widths.
// Order: embed_tokens; per layer input_layernorm, W_pack, o_proj, post_attention_layernorm,
// gate_proj, up_proj, down_proj (gate and up adjacent: one GEMM computes both); norm; lm_head.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "backend/device_buffer.h"
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

// What a parameter is, independent of its layer.
enum class ParamKind { Embed, InputNorm, Wpack, Wo, PostNorm, Gate, Up, Down, FinalNorm, Head };

// The layer value of the parameters outside the decoder layers.
constexpr int kEmbedLayer = -1;  // embed_tokens (first pipeline stage)
constexpr int kHeadLayer = -2;   // final norm and lm_head (last pipeline stage)

struct ParamSpec {
  std::string name;  // Hugging Face name, e.g. model.layers.3.self_attn.W_pack.weight
  Shape shape;       // this shard's slice (equal to global_shape without tensor parallelism)
  int64_t offset = 0;  // elements from the start of the buffer
  TpSplit split = TpSplit::None;
  int layer = -1;      // decoder layer (global index), or kEmbedLayer / kHeadLayer
  bool is_norm = false;  // no weight decay (Megatron skips norms and biases)
  double init_std = 0;   // 0: initialised to ones
  ParamKind kind = ParamKind::Embed;
  Shape global_shape;    // the whole tensor's shape
};

// Which part of the model one instance holds: decoder layers [first_layer, end_layer), the
// embedding when has_embedding (the first pipeline stage), the final norm and lm_head when
// has_head (the last), at tensor-parallel rank tp_rank of tp_size; with sequence_parallel (and
// tp_size > 1) its residual stream holds only its slice of the rows.
// Interleaved pipeline (Megatron's virtual stages): with chunks = V > 1 the shard holds V model
// chunks, chunk v being [first_layer, end_layer) shifted by v x pp_size x (end_layer - first_layer),
// i.e. layers [(v P + p) N, (v P + p + 1) N); the embedding belongs to chunk 0, the head to chunk
// V - 1. Local layers run chunk by chunk in ascending global order.
struct ModelShard {
  int first_layer = 0, end_layer = -1;  // end_layer -1: the config's number of layers (chunk 0's range)
  bool has_embedding = true, has_head = true;
  int tp_rank = 0, tp_size = 1;
  bool sequence_parallel = false;
  int pp_rank = 0, pp_size = 1;  // the pipeline stage (what checkpoint files are named after)
  int chunks = 1;                // model chunks (virtual pipeline stages) on this rank
  // The whole model on one rank.
  static ModelShard whole() { return {}; }
  // Pipeline stage `stage` of `stages`, tensor-parallel rank r of tp, with `chunks` model chunks
  // of num_layers / (stages x chunks) layers each (1: a contiguous stage of equal layer ranges).
  static ModelShard stage(const ModelConfig& cfg, int stage, int stages, int tp_rank = 0, int tp = 1,
                          int chunks = 1);
  int end(const ModelConfig& cfg) const { return end_layer < 0 ? int(cfg.num_layers) : end_layer; }
  int chunk_layers(const ModelConfig& cfg) const { return end(cfg) - first_layer; }
  int num_layers(const ModelConfig& cfg) const { return chunks * chunk_layers(cfg); }
  // The global decoder layer of local layer l (0 .. num_layers - 1).
  int layer_at(const ModelConfig& cfg, int l) const {
    const int n = chunk_layers(cfg);
    return first_layer + (l / n) * pp_size * n + l % n;
  }
  // Chunk v alone, as a one-chunk shard (its layers, the embedding only in chunk 0, the head only
  // in the last): what the model plans each chunk's activations from.
  ModelShard chunk(const ModelConfig& cfg, int v) const;
  // Throws a UsageError when the range is empty or outside the config, or TP does not divide the
  // heads, FFN or vocabulary.
  void validate(const ModelConfig& cfg) const;
};

// One rank's widths: the hidden size D is whole on every rank; heads, FFN and vocabulary are
// this tensor-parallel rank's share (vocab rows [vocab_offset, vocab_offset + vocab)).
struct Widths {
  int64_t d = 0, heads = 0, head_dim = 0, ffn = 0, vocab = 0, vocab_offset = 0;
  int64_t attention() const { return heads * head_dim; }  // the q (or k, or v) width of this rank
  static Widths of(const ModelConfig& cfg, const ModelShard& shard);
};

// The six weights of one decoder layer.
struct LayerWeights {
  Tensor ln1, wpack, wo, ln2, wgu, wdown;  // wgu: (2F, D) view over gate_proj then up_proj
};

// Views of one shard's parameters (or gradients): embed is empty without the embedding, norm and
// head without the head; layers[i] is decoder layer shard.layer_at(cfg, i).
struct ModelWeights {
  Tensor embed, norm, head;
  std::vector<LayerWeights> layers;
};

// The parameter specs of the whole model (global shapes) without allocating anything: what
// conversion and checkpoint tools use to know the model's tensors.
std::vector<ParamSpec> param_specs(const ModelConfig& cfg);
// The specs of one shard, at its local shapes, offsets into its own buffer.
std::vector<ParamSpec> param_specs(const ModelConfig& cfg, const ModelShard& shard);

// The elements of the whole tensor `global` (row-major, s.global_shape) that shard's parameter s
// holds (s.shape), into out: its rows, columns or heads as s.split says. What layout-invariant init
// and loading of whole tensors into a tensor-parallel shard use.
void take_shard_slice(const ParamSpec& s, const ModelShard& shard, int64_t hidden, const float* global, float* out);

class ParamStore {
 public:
  // Parameters in param_dtype and gradients in grad_dtype, allocated on `backend`.
  ParamStore(const ModelConfig& cfg, const ModelShard& shard, Backend& backend,
             DType param_dtype = DType::F32, DType grad_dtype = DType::F32);
  const std::vector<ParamSpec>& specs() const { return specs_; }
  const ModelShard& shard() const { return shard_; }
  int64_t numel() const { return numel_; }
  DType param_dtype() const { return param_dtype_; }
  DType grad_dtype() const { return grad_dtype_; }
  // Views into the parameter (or gradient) buffer.
  const ModelWeights& weights() const { return w_; }
  const ModelWeights& grads() const { return g_; }
  Tensor param(const ParamSpec& s) const { return params_.tensor(s.shape, param_dtype_, bytes_at(s, param_dtype_)); }
  Tensor grad(const ParamSpec& s) const { return grads_.tensor(s.shape, grad_dtype_, bytes_at(s, grad_dtype_)); }
  Tensor flat_params() const { return params_.tensor({numel_}, param_dtype_); }
  Tensor flat_grads() const { return grads_.tensor({numel_}, grad_dtype_); }
  // The buffers with their padding (zeros after numel()): what a sharded optimizer cuts into
  // equal shards.
  int64_t padded_numel() const { return padded_; }
  Tensor padded_params() const { return params_.tensor({padded_}, param_dtype_); }
  Tensor padded_grads() const { return grads_.tensor({padded_}, grad_dtype_); }
  // Grows both buffers to a multiple of `multiple` elements (the data-parallel size of a sharded
  // optimizer), keeping their contents; the padding stays zero.
  void pad_to(Ctx& ctx, int64_t multiple);
  // The spec with this name, or nullptr.
  const ParamSpec* find(const std::string& name) const;
  // The spec of (kind, layer) (layer: the global decoder layer; ignored outside layers), or
  // nullptr when this shard does not hold it.
  const ParamSpec* find(ParamKind kind, int layer = 0) const;
  // The specs of one layer (kEmbedLayer, kHeadLayer or a decoder layer), in buffer order: a
  // contiguous range of the buffer [first offset, last offset + numel).
  std::vector<const ParamSpec*> layer_specs(int layer) const;
  // The flat range [first, second) of one layer's parameters (empty when this shard does not hold
  // the layer), found without allocating: what a per-layer gradient reduction slices.
  std::pair<int64_t, int64_t> layer_range(int layer) const;
  // Layout-invariant init: element e of parameter p (global index) is N(0, std_p) from Philox
  // keyed by (seed, p.name) at counter e; norm weights are 1. Built on the host, then uploaded.
  void init(Ctx& ctx, uint64_t seed);

 private:
  static size_t bytes_at(const ParamSpec& s, DType t) { return size_t(s.offset) * dtype_size(t); }
  ModelWeights views(const DeviceBuffer& b, DType t) const;
  ModelConfig cfg_;
  ModelShard shard_;
  std::vector<ParamSpec> specs_;
  int64_t numel_ = 0, padded_ = 0;
  DType param_dtype_, grad_dtype_;
  DeviceBuffer params_, grads_;
  ModelWeights w_, g_;
};

}  // namespace cs
