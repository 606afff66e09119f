// AdamW over the model's one parameter buffer: fp32 master weights (the parameters themselves on
// CPU), first and second moments in two buffers of the same layout. Weight decay is skipped for
// norm weights (Megatron skips norms and biases; Baichuan has no biases).
#pragma once
#include "backend/backend.h"
#include "core/buffer.h"
#include "model/params.h"

namespace cs {

struct AdamWConfig {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.01;
};

class AdamW {
 public:
  AdamW(const ParamStore& params, const AdamWConfig& cfg, const Ops& ops);
  // One step with learning rate lr on params' current gradients.
  void step(ParamStore& params, double lr);
  int64_t steps() const { return step_; }
  Tensor exp_avg() const { return Tensor(m_.f32(), {numel_}); }
  Tensor exp_avg_sq() const { return Tensor(v_.f32(), {numel_}); }
  void set_steps(int64_t s) { step_ = s; }

 private:
  AdamWConfig cfg_;
  const Ops& ops_;
  int64_t numel_, step_ = 0;
  Buffer m_, v_;
};

}  // namespace cs
