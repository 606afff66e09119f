// Global gradient norm and clipping by it (Pascanu et al. 2013; Megatron's clip_grad_norm_fp32):
// coeff = max_norm / (norm + 1e-6), gradients scaled by coeff when it is below 1. The norm is over
// the whole flat gradient buffer; with model parallelism the squared sums are all-reduced first.
#pragma once
#include "backend/backend.h"
#include "parallel/group.h"

namespace cs {

// sqrt(sum of squares) of grads over every rank of `group` (inf or nan when any entry is).
double grad_norm_global(const Ops& ops, const Tensor& grads, Group& group);

// Scales grads so their norm is at most max_norm (no-op when max_norm <= 0 or the norm is below).
void clip_grads(const Ops& ops, Tensor& grads, double norm, double max_norm);

}  // namespace cs
