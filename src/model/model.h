// Model: the Baichuan decoder stack with its parameters, planned activations and hand-written
// backward. forward(tokens, targets) -> mean loss; backward() accumulates parameter gradients.
// All activation memory is planned once for (max_batch, max_seq); a step allocates nothing.
// The model knows no devices beyond the op table and no parallelism beyond the Group it is given.
#pragma once
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "core/buffer.h"
#include "model/config.h"
#include "model/layer.h"
#include "model/params.h"
#include "parallel/group.h"

namespace cs {

class Model {
 public:
  Model(const ModelConfig& cfg, const Ops& ops, Group& tp_group, int64_t max_batch, int64_t max_seq);

  const ModelConfig& config() const { return cfg_; }
  ParamStore& params() { return params_; }
  const ParamStore& params() const { return params_; }

  // tokens, targets: (b, t) row-major int32; target -1 is ignored. Returns the mean loss over
  // the counted targets (0 when none). A token id outside [0, vocab) is a cs::Error.
  double forward(const int32_t* tokens, const int32_t* targets, int64_t b, int64_t t);
  // Gradients of (grad_scale * sum of per-position losses) accumulate into params().grads();
  // grad_scale < 0 means 1 / count (the gradient of the mean loss). Uses the last forward.
  void backward(float grad_scale = -1.f);
  void zero_grad();

  // After forward: per-position losses (b*t) and logits (b*t, V); backward overwrites the logits.
  Tensor losses() const { return Tensor(losses_.f32(), {dims_.n()}); }
  Tensor logits() const { return Tensor(logits_.f32(), {dims_.n(), cfg_.vocab_size}); }
  int64_t target_count() const { return count_; }
  // Bytes of planned activation memory.
  size_t activation_bytes() const;

 private:
  // Throws cs::Error naming the first id outside [lo, vocab).
  void check_tokens(const int32_t* ids, int64_t n, const char* what, int32_t lo) const;
  LayerCtx layer_ctx() const { return {ops_, cfg_, dims_, slopes_t_}; }

  ModelConfig cfg_;
  const Ops& ops_;
  Group& tp_;
  int64_t max_batch_, max_seq_;
  ParamStore params_;
  Dims dims_{};
  int64_t count_ = 0;
  // Planned buffers.
  Buffer tokens_, targets_;          // (B*T) i32 copies of the current micro-batch
  Buffer res_;                       // (L + 1) residual streams of (N, D): layer inputs + final
  Buffer saved_;                     // L sets (or 1 with recomputation) of LayerSaved
  Buffer scratch_;                   // one LayerScratch + dres (N, D) + recompute output (N, D)
  Buffer lnf_, rstdf_, logits_, losses_, lse_;
  Buffer slopes_;
  Tensor slopes_t_;
  std::vector<LayerSaved> saved_sets_;
  LayerScratch scratch_set_{};
  float *dres_ = nullptr, *recompute_out_ = nullptr;
};

}  // namespace cs
