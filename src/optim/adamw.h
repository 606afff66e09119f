// AdamW over the model's one parameter buffer: fp32 master weights, first and second moments in
// buffers of the same layout, all allocated through the backend. With f32 parameters the master
// weights are the parameters themselves; with bf16 / f16 parameters (a compute copy) the optimizer
// keeps an f32 master copy, updates it and casts it back into the parameters after each step.
// Weight decay is skipped for norm weights (Megatron skips norms and biases; Baichuan has none).
#pragma once
#include "backend/backend.h"
#include "backend/device_buffer.h"
#include "model/params.h"

namespace cs {

struct AdamWConfig {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.01;
};

class AdamW {
 public:
  // Gradients must be f32 (the optimizer's arithmetic dtype).
  AdamW(const ParamStore& params, const AdamWConfig& cfg, Ctx& ctx);
  // One step with learning rate lr on params' current gradients.
  void step(ParamStore& params, double lr);
  int64_t steps() const { return step_; }
  void set_steps(int64_t s) { step_ = s; }
  // Flat f32 views of the moments and the master weights (the parameters when they are f32).
  Tensor exp_avg() const { return m_.tensor({numel_}); }
  Tensor exp_avg_sq() const { return v_.tensor({numel_}); }
  Tensor master(const ParamStore& params) const;
  // Refreshes the master copy from the parameters (after loading weights into them); a no-op when
  // the parameters are the master weights.
  void load_master(const ParamStore& params);

 private:
  AdamWConfig cfg_;
  Ctx& ctx_;
  int64_t numel_, step_ = 0;
  bool separate_master_;
  DeviceBuffer m_, v_, master_;
};

}  // namespace cs
