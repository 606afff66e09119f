// AdamW over the model's one parameter buffer: fp32 master weights and first and second moments,
// allocated through the backend. With f32 parameters the master weights are the parameters
// themselves; with bf16 / f16 parameters (a compute copy) the optimizer keeps an f32 master copy,
// updates it and casts it back into the parameters after each step.
// Sharded (Megatron's distributed optimizer, DeepSpeed's ZeRO stage 1 and 2): given the
// data-parallel group, rank r keeps the moments (and a separate master copy) of its shard
// [r S, (r + 1) S) of the padded flat buffer only (S = padded numel / DP), steps on its shard of the
// reduce-scattered gradients and all-gathers the updated parameters. The update of every element
// is the same arithmetic as unsharded. Weight decay is skipped for norm weights (Megatron skips
// norms and biases; Baichuan has none).
#pragma once
#include "backend/backend.h"
#include "backend/device_buffer.h"
#include "model/params.h"
#include "parallel/group.h"

namespace cs {

struct AdamWConfig {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.01;
};

class AdamW {
 public:
  // Gradients must be f32 (the optimizer's arithmetic dtype). shard_over: the data-parallel group
  // to shard the state over (null: every rank keeps all of it); the parameters must have been
  // padded to a multiple of its size (ParamStore::pad_to).
  AdamW(const ParamStore& params, const AdamWConfig& cfg, Ctx& ctx, Group* shard_over = nullptr);
  // One step with learning rate lr. Unsharded: on params' gradients. Sharded: on this rank's shard
  // of the gradients (shard_grads(): the caller reduce-scatters into it), then the parameters are
  // all-gathered. The gradients are read scaled by grad_scale (clip_coefficient's: clipping in the
  // update's own pass, the gradients left as they are).
  void step(ParamStore& params, double lr, float grad_scale = 1.f);
  int64_t steps() const { return step_; }
  void set_steps(int64_t s) { step_ = s; }
  // A resumed run may train with its checkpoint's weight decay (--use-checkpoint-opt_param-scheduler).
  void set_weight_decay(double wd) { cfg_.weight_decay = wd; }
  bool sharded() const { return group_ != nullptr; }
  // This rank's range of the flat buffer: [shard_begin, shard_begin + shard_size).
  int64_t shard_begin() const { return begin_; }
  int64_t shard_size() const { return size_; }
  // This rank's gradient shard (the whole gradient when unsharded).
  Tensor shard_grads(const ParamStore& params) const;

  // The whole state as flat f32 tensors of params.numel() elements, for saving: the master
  // weights, exp_avg, exp_avg_sq. Sharded, this all-gathers (a collective: every rank of the group
  // calls it) into buffers kept until the next call.
  struct State {
    Tensor master, exp_avg, exp_avg_sq;
  };
  State gather(const ParamStore& params);
  // Tensors to load the whole state into (the real buffers, or staging when sharded); then
  // load_full() takes this rank's shard from them (a no-op unsharded).
  State full_for_loading(const ParamStore& params);
  void load_full(const ParamStore& params);
  // Refreshes the master copy from the parameters (after loading weights into them); a no-op when
  // the parameters are the master weights.
  void load_master(const ParamStore& params);
  // This rank's f32 master weights: [shard_begin, shard_begin + shard_size) of the flat buffer
  // (the parameters themselves when they are f32 and unsharded).
  Tensor master_shard(const ParamStore& params) const;

 private:
  Tensor moment(const DeviceBuffer& b) const { return b.tensor({size_}); }
  AdamWConfig cfg_;
  Ctx& ctx_;
  Group* group_;
  int64_t numel_, begin_ = 0, size_ = 0, step_ = 0;
  bool separate_master_;
  DeviceBuffer m_, v_, master_, full_;  // full_: gathered / staging state (3 x padded numel), sharded only
};

}  // namespace cs
