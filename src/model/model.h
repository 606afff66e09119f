// Model: one shard of the Baichuan decoder stack (a contiguous range of layers, with or without
// the embedding and the head, at one tensor-parallel rank's widths) with its parameters, planned
// activations and hand-written backward. All memory comes from the backend of the execution
// context it is given; activation memory is planned once for (max_batch, max_seq), so a step
// allocates nothing. The model knows no device beyond that context and no parallelism beyond the
// Group it is given; it never reads device memory on the host except in mean_loss().
// With an interleaved pipeline the shard holds several model chunks (ModelShard::chunks): each has
// its own activations (slots, stage-boundary buffers), and use_chunk() picks the one that forward,
// backward and the boundary tensors refer to; the parameters are one store over every chunk.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "backend/device_buffer.h"
#include "model/config.h"
#include "model/layer.h"
#include "model/params.h"
#include "parallel/group.h"

namespace cs {

// Storage dtypes: parameters, their gradients, activations, and the GEMMs' saved inputs and
// outputs (the norms' outputs, qkv, the attention's q, k, v, output and output gradient, the
// merged attention output, gate|up, the SwiGLU output; the logits' gradient). fp32 master weights and Adam moments belong to the optimizer (optim/adamw.h), which
// keeps them apart from the parameters when the parameter dtype is not f32.
struct Precision {
  DType param = DType::F32, grad = DType::F32, activation = DType::F32, gemm_io = DType::F32;
  // Megatron's --bf16 on the CPU: bf16 compute copy of the parameters, f32 gradients (Megatron's
  // fp32 main grads), the GEMMs' saved inputs and outputs in bf16 (attention included: its tile
  // products are bf16 GEMMs); the residual stream, the norm statistics, the softmax and its
  // statistics, the gradients of q, k, v and the logits f32.
  static Precision bf16() { return {DType::BF16, DType::F32, DType::F32, DType::BF16}; }
  // Megatron's --fp16 on a GPU: the same with f16 (the dynamic loss scaler keeps the f16
  // activations' gradients in range). The CPU has no f16 arithmetic that pays: --fp16 there keeps
  // f32 compute (Precision{}) with the loss scaler.
  static Precision fp16() { return {DType::F16, DType::F32, DType::F32, DType::F16}; }
};

class Model {
 public:
  // in_flight: activation slots (per chunk), the micro-batches whose forward has run and whose
  // backward has not (a pipeline stage's 1F1B schedule keeps up to its number of later stages in
  // flight).
  Model(const ModelConfig& cfg, Ctx& ctx, Group& tp_group, int64_t max_batch, int64_t max_seq,
        const ModelShard& shard = ModelShard::whole(), const Precision& precision = {}, int64_t in_flight = 1);

  const ModelConfig& config() const { return cfg_; }
  const ModelShard& shard() const { return params_.shard(); }
  const Widths& widths() const { return widths_; }
  Ctx& ctx() const { return ctx_; }
  ParamStore& params() { return params_; }
  const ParamStore& params() const { return params_; }

  // Model chunks (interleaved pipeline; 1 otherwise), and the chunk the calls below refer to.
  int64_t chunks() const { return int64_t(acts_.size()); }
  int64_t chunk() const { return chunk_; }
  void use_chunk(int64_t v);
  // Whether the current chunk embeds the tokens (chunk 0 of the first stage) or ends in the head
  // and the loss (the last chunk of the last stage).
  bool runs_embedding() const { return params_.shard().has_embedding && chunk_ == 0; }
  bool runs_head() const { return params_.shard().has_head && chunk_ == chunks() - 1; }

  // One micro-batch. tokens, targets: host (b, t) row-major int32; target -1 is ignored. With the
  // embedding, tokens are embedded (and targets/tokens checked: an id outside [0, vocab) is a
  // cs::Error); without it, input() must hold the previous stage's output. With the head, the
  // per-position losses are computed and their sum written to loss_sum() on the device;
  // without it, output() holds the last layer's output. Nothing is read back to the host.
  // slot: the activation slot this micro-batch's activations stay in until its backward.
  // segments: null, or host (b, t) sample ids of packed sequences (Megatron's
  // --reset-attention-mask): attention stays within each run of equal ids. positions: null, or
  // host (b, t) RoPE positions (Megatron's --reset-position-ids); null with segments means each
  // run's positions restart at 0 (ALiBi's distances are relative already).
  void forward(const int32_t* tokens, const int32_t* targets, int64_t b, int64_t t, int64_t slot = 0,
               const int32_t* segments = nullptr, const int32_t* positions = nullptr);
  // The mean loss of the last forward over its counted targets (0 when none): reads loss_sum()
  // back to the host (a synchronisation: for evaluation and tests, not the training step).
  double mean_loss() const;
  // Gradients of (grad_scale * sum of per-position losses) accumulate into params().grads();
  // grad_scale < 0 means 1 / count (the gradient of the mean loss). Uses the last forward. With
  // the head, it starts from the losses; without it, from output_grad() (set by the caller).
  // Without the embedding it leaves the gradient of input() in input_grad().
  // slot: the micro-batch (activation slot) of an earlier forward.
  void backward(float grad_scale = -1.f, int64_t slot = 0);
  // Starts a step's gradients at zero. The weight matrices' gradients (nearly all of them) are
  // not cleared here: each layer's first backward after this overwrites them (its weight-gradient
  // GEMMs run with beta 0, a pass over them saved) and later backwards add to them; the rest (norm
  // weights, and the embedding's, a scatter-add) are zeroed.
  void zero_grad();
  // Under sequence parallelism each tensor-parallel rank's norm-weight gradients cover its own
  // rows only: sums them over the group (once, after the last micro-batch's backward, as
  // Megatron's finalize_model_grads does). A no-op otherwise.
  void reduce_sequence_parallel_grads();
  bool sequence_parallel() const { return sp_; }
  Group& tp_group() const { return tp_; }
  // Called during backward as soon as a layer's parameter gradients are complete (the layer
  // index: a decoder layer, kHeadLayer for the final norm and lm_head, kEmbedLayer): where data
  // parallelism starts reducing them while backward goes on.
  void on_grads_ready(std::function<void(int layer)> callback) { grads_ready_ = std::move(callback); }

  // Activations of the current slot (the last forward's or backward's, or input()'s) at its dims. input/output: (Ns, D) stage boundary (Ns = N, or this
  // rank's N / TP rows under sequence parallelism); output_grad and
  // input_grad are the same residual-gradient buffer before and after backward. input(b, t): the
  // input of the next forward of b x t, to fill before it (a stage without the embedding).
  Tensor input() const { return res(0); }
  Tensor input(int64_t b, int64_t t, int64_t slot = 0);
  Tensor output() const;
  // The output of slot `slot`'s micro-batch (after its forward), to send on.
  Tensor output(int64_t slot) {
    use_slot(slot);
    return output();
  }
  Tensor output_grad() const;
  // The output gradient of slot `slot`'s micro-batch, to fill before its backward (a stage
  // without the head).
  Tensor output_grad(int64_t slot) {
    use_slot(slot);
    return output_grad();
  }
  Tensor input_grad() const { return output_grad(); }
  // After forward (with the head): per-position losses (b*t, the same on every tensor-parallel
  // rank), logits (b*t, Vl: this rank's vocabulary columns), the loss sum (F64 [1]); backward
  // overwrites the logits.
  Tensor losses() const { return prefix(a_->losses, {slot().dims.n()}); }
  Tensor logits() const;
  Tensor loss_sum() const { return a_->loss_sum; }
  int64_t target_count() const { return slot().count; }
  int64_t in_flight() const { return int64_t(a_->slots.size()); }
  // Bytes of planned activation memory.
  size_t activation_bytes() const { return act_.bytes(); }
  // The same, for a model not built: what `plan` reports (the constructor's own carving, every
  // chunk's).
  static size_t planned_activation_bytes(const ModelConfig& cfg, const ModelShard& shard, int64_t max_batch,
                                         int64_t max_seq, const Precision& precision = {}, int64_t in_flight = 1);

  // What decoding needs: the layer context at dims d, and the ALiBi slopes (no packing: the
  // segments and positions are empty, shape {0}).
  inline static const Tensor kNone{nullptr, {0}, DType::I32};
  LayerCtx layer_ctx(const Dims& d) const {
    return {ctx_, ctx_.ops, cfg_, d, a_->slopes, tp_.size() > 1 ? &tp_ : nullptr, sp_, a_->comm, kNone, kNone};
  }

 private:
  // Throws cs::Error naming the first id outside [lo, vocab).
  void check_tokens(const int32_t* ids, int64_t n, const char* what, int32_t lo) const;
  // Residual stream i (0: the input, L: the output) of n rows (default: the current dims' Ns).
  Tensor res(int64_t i, int64_t n = -1) const;
  // One micro-batch's activations, kept from its forward to its backward.
  struct Slot {
    Tensor tokens, targets;  // (N) i32 copies of the micro-batch
    Tensor segments, positions;  // (N) i32: packed sequences' sample ids and positions
    bool has_segments = false, has_positions = false;
    Tensor res;              // (L + 1) residual streams of (Ns, D): layer inputs + final output
    std::vector<LayerSaved> saved;  // the sets of the layers that are not recomputed
    Tensor lnf, rstdf, logits, lse;  // the head's (last stage)
    Dims dims{};
    int64_t count = 0;  // counted targets
  };
  // Every planned activation buffer, carved from one block.
  struct Activations {
    std::vector<Slot> slots;
    std::vector<int64_t> saved_index;  // local layer -> its set in a slot, -1: the shared set
    LayerSaved shared_set;             // rebuilt by each recomputed layer in backward
    LayerScratch scratch;
    Tensor dres, recompute_out, losses, loss_sum, slopes;
    Tensor comm;                       // (N, D) tensor-parallel exchanges (layer.h)
    Tensor lse_parts, target_logit;    // vocab-parallel cross entropy: (TP, N) and (N)
  };
  // Carves a's buffers for shard of cfg at the planned maximum dims mx (a null carver measures):
  // the one description of the activation memory, used by the constructor and by
  // planned_activation_bytes.
  static void carve(TensorCarver& c, const ModelConfig& cfg, const ModelShard& shard, const Dims& mx,
                    const Precision& p, int64_t in_flight, Activations& a);
  // Whether local layer l is recomputed in backward (all layers with full recomputation, the
  // stage's first recompute_num_layers with the block method).
  static bool recomputed(const ModelConfig& cfg, int64_t l) {
    return cfg.recompute && (cfg.recompute_num_layers < 0 || l < cfg.recompute_num_layers);
  }
  bool recomputed(int64_t l) const { return recomputed(cfg_, l); }
  const Slot& slot() const { return a_->slots[size_t(cur_)]; }
  // The layer context of a slot's micro-batch (with its packing, if any).
  LayerCtx layer_ctx(const Slot& sl) const;
  void use_slot(int64_t s);
  const LayerSaved& saved(int64_t l) const {
    const int64_t i = a_->saved_index[size_t(l)];
    return i < 0 ? a_->shared_set : slot().saved[size_t(i)];
  }

  ModelConfig cfg_;
  Ctx& ctx_;
  Group& tp_;
  int64_t max_batch_, max_seq_;
  ParamStore params_;
  Widths widths_;
  int64_t n_layers_;  // layers per chunk
  DType gemm_dtype_;  // Precision::gemm_io: the logits' gradient is written in it
  bool sp_;
  std::function<void(int)> grads_ready_;
  // Whether this step's backward has written each local layer's weight-matrix gradients (over
  // all chunks), and the head's (zero_grad clears them; a fresh model's are zero and unwritten).
  std::vector<char> layer_grads_written_;
  bool head_grads_written_ = false;
  // Planned device buffers, carved from one block.
  DeviceBuffer act_;
  std::vector<Activations> acts_;  // per chunk
  Activations* a_ = nullptr;       // the current chunk's
  int64_t chunk_ = 0;
  std::vector<int32_t> positions_host_;  // a packed micro-batch's positions, made on the host
  int64_t cur_ = 0;
};

}  // namespace cs
