// How a tensor- and pipeline-parallel layout splits the model's parameters (DESIGN.md §6,
// Megatron's rules): W_pack column-parallel by heads, gate/up column-parallel, o_proj/down
// row-parallel, embedding and lm_head vocab-parallel, norms replicated; pipeline stages hold
// contiguous layer ranges, the first also the embedding, the last the final norm and lm_head.
// Pure arithmetic on ParamSpecs: the converter writes native shards with it, and a TP/PP run
// reads its slices with the same answers.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "checkpoint/native.h"
#include "model/params.h"

namespace cs {

// Throws a UsageError naming the flag when TP does not divide the attention heads, the
// vocabulary or the FFN size, or PP does not divide the layers (or either is below 1).
void check_parallel_layout(const ModelConfig& cfg, int64_t tp, int64_t pp);

// The pipeline stage (0..pp-1) that holds the parameter.
int64_t pipeline_stage(const ParamSpec& s, const ModelConfig& cfg, int64_t pp);

// TP rank `rank`'s local slice of a parameter: its shape, its offset in the global tensor, and
// (W_pack only) the blocks of global rows its local rows come from. A replicated tensor's slice
// is the whole tensor on every rank.
struct TpSlice {
  Shape local;
  std::vector<int64_t> offset;
  std::vector<RowBlock> row_blocks;  // empty: the rows [offset[0], offset[0] + local[0])
};
TpSlice tp_slice(const ParamSpec& s, const ModelConfig& cfg, int64_t tp, int64_t rank);

// "model-tp01-pp002.safetensors"
std::string model_shard_name(int64_t tp_rank, int64_t pp_rank);

}  // namespace cs
