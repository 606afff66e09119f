// Model FLOPs of one training step, the number behind TFLOPs/p and MFU (DESIGN §7).
#pragma once
#include <cstdint>

#include "model/config.h"

namespace cs {

// FLOPs of forward + backward (3x forward) for `samples` sequences of `seq` tokens:
//   forward = 2 * N * (L * (3 D^2 [W_pack] + D^2 [o_proj] + 3 D F [gate, up, down]) + V D [logits])
//           + L * 4 * samples * seq^2 * D [q k^T and p v, counted over the full T x T as Megatron does]
// with N = samples * seq. Recomputation is not counted (model FLOPs, not hardware FLOPs).
// For a GPT-style MLP (F = 4D, two matrices) this is Megatron's published
// 72 B s L h^2 (1 + s / (6 h) + V / (12 h L)) (Narayanan et al. 2021, eq. 3); docs/performance.md.
double model_flops(const ModelConfig& c, int64_t samples, int64_t seq);
// The attention term of model_flops alone (3 * L * 4 * samples * seq^2 * D: the full T x T, as
// counted there; a causal kernel does half of it). model_flops minus it are the GEMMs' FLOPs.
double attention_flops(const ModelConfig& c, int64_t samples, int64_t seq);

}  // namespace cs
