// Global gradient norm and clipping by it (Pascanu et al. 2013; Megatron's clip_grad_norm_fp32):
// coeff = max_norm / (norm + 1e-6), gradients scaled by coeff when it is below 1. The squared
// norm is reduced on the device and all-reduced over the group there; the trainer reads it once a
// step (it decides on skipping, clipping and logging from it).
#pragma once
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "model/params.h"
#include "parallel/group.h"

namespace cs {

// Flat ranges [first, second), relative to `begin`, of the window [begin, end) of ps's gradient
// buffer that count towards the global norm on this rank: every element on tensor-parallel rank 0
// (up to the parameters' end: not a sharded optimizer's padding);
// on the other ranks only the parameters split over tensor parallelism, so a replicated one (the
// norm weights) counts once (Megatron's param_is_not_tensor_parallel_duplicate). Adjacent
// parameters merge into one range.
std::vector<std::pair<int64_t, int64_t>> norm_ranges(const ParamStore& ps, int64_t begin, int64_t end);

// out (F64 [1]) = sum of squares of grads over every rank of `group` (inf or nan when any entry
// is). Nothing is read back to the host.
void grad_sq_norm(Ctx& ctx, const Tensor& grads, Group& group, const Tensor& out);

// A reduction op of the backend (Ops::sum_squares, Ops::count_zeros): x (f32) into out (F64 [1]).
using FoldOp = void (*)(Ctx& c, const Tensor& x, const Tensor& out);

// This rank's part of a reduction over the gradients (the squared norm with Ops::sum_squares, the
// zero count with Ops::count_zeros), without a reduction over ranks: FOLD of grads over `ranges`
// (norm_ranges), each range's result into parts (F64, at least ranges.size() elements), then
// summed in range order into out. One range covering grads writes out directly.
void grad_fold_local(Ctx& ctx, const Tensor& grads, const std::vector<std::pair<int64_t, int64_t>>& ranges,
                     const Tensor& parts, const Tensor& out, FoldOp fold);

// The factor that brings gradients of global norm `norm` to at most max_norm: max_norm / (norm +
// 1e-6) as fp32 when that is below 1, else 1 (and 1 when max_norm <= 0 or the norm is not finite).
// AdamW::step applies it in its own pass (the trainer's clipping).
float clip_coefficient(double norm, double max_norm);

}  // namespace cs
