// The process grid in Megatron's rank order: tensor-parallel ranks are neighbours, then data
// parallel, then pipeline stages: rank = tp + TP * (dp + DP * pp). Validated before anything is
// allocated: world = TP x PP x DP, the heads and FFN divisible by TP, the layers by PP, the global
// batch by micro batch x DP, the padded vocabulary by TP; each failure is one line naming the flag.
// The groups are split from the world group by colour, so every collective of a TP, DP or PP group
// involves exactly the ranks Megatron's parallel_state would put in it.
#pragma once
#include <memory>

#include "parallel/group.h"

namespace cs {

// What the grid is validated against: the parallel sizes, the batch sizes and the model's
// divisible dimensions (the vocabulary already padded).
struct GridSizes {
  int tp = 1, pp = 1;
  int64_t micro_batch = 1, global_batch = 1;
  int64_t heads = 1, ffn = 1, vocab = 1, layers = 1;
  int64_t virtual_layers = 0;  // --num-layers-per-virtual-pipeline-stage (0: no interleaving)
};

// Throws a UsageError naming the flag unless the interleaved schedule can run: pp >= 2, layers a
// multiple of pp x virtual_layers, and the micro-batches of each rank a multiple of pp (Megatron's
// checks). A no-op when virtual_layers is 0.
void check_virtual_pipeline(int64_t virtual_layers, int64_t pp, int64_t layers, int64_t micro_per_rank);

// Throws a UsageError naming the flag unless tp and pp are at least 1, tp divides the attention
// heads, the vocabulary and the FFN size, and pp divides the layers: the one check of how a model
// splits, used by the grid, by model shards and by convert.
void check_model_split(int64_t tp, int64_t pp, int64_t heads, int64_t ffn, int64_t vocab, int64_t layers);

struct Grid {
  int world = 1, tp = 1, pp = 1, dp = 1;
  int rank = 0, tp_rank = 0, pp_rank = 0, dp_rank = 0;

  // The coordinates of `rank` in a world of `world` ranks; a UsageError naming the flag when the
  // sizes do not fit the world or the model.
  static Grid make(int world, int rank, const GridSizes& s);
  // Megatron's rank of the coordinates (tp, dp, pp).
  int rank_of(int tp_rank, int dp_rank, int pp_rank) const { return tp_rank + tp * (dp_rank + dp * pp_rank); }
};

// The tensor-, data- and pipeline-parallel groups of this rank, split from world (every rank of
// world must call this, in the same order).
struct GridGroups {
  std::unique_ptr<Group> tp, dp, pp;
  static GridGroups split(Group& world, const Grid& g);
};

}  // namespace cs
