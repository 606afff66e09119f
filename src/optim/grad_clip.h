// Global gradient norm and clipping by it (Pascanu et al. 2013; Megatron's clip_grad_norm_fp32):
// coeff = max_norm / (norm + 1e-6), gradients scaled by coeff when it is below 1. The squared
// norm is reduced on the device and all-reduced over the group there; the trainer reads it once a
// step (it decides on skipping, clipping and logging from it).
#pragma once
#include "backend/backend.h"
#include "parallel/group.h"

namespace cs {

// out (F64 [1]) = sum of squares of grads over every rank of `group` (inf or nan when any entry
// is). Nothing is read back to the host.
void grad_sq_norm(Ctx& ctx, const Tensor& grads, Group& group, const Tensor& out);

// Scales grads so their norm is at most max_norm (no-op when max_norm <= 0, the norm is not
// finite, or it is below max_norm).
void clip_grads(Ctx& ctx, const Tensor& grads, double norm, double max_norm);

}  // namespace cs
