#include "parallel/grid.h"

#include <fmt/core.h>

namespace cs {

void check_model_split(int64_t tp, int64_t pp, int64_t heads, int64_t ffn, int64_t vocab, int64_t layers) {
  if (tp < 1 || pp < 1)
    throw UsageError(fmt::format("--tensor-model-parallel-size {} / --pipeline-model-parallel-size {}: "
                                 "expected sizes of at least 1", tp, pp));
  const std::pair<const char*, int64_t> divided[] = {
      {"attention heads", heads}, {"vocabulary entries", vocab}, {"FFN columns", ffn}};
  for (const auto& [what, n] : divided)
    if (n % tp != 0)
      throw UsageError(fmt::format("--tensor-model-parallel-size {}: does not divide the model's {} {} "
                                   "(TP splits heads, vocabulary and FFN evenly). Hint: use a divisor of {}{}",
                                   tp, n, what, n,
                                   what[0] == 'v' ? ", or pad the vocabulary (--make-vocab-size-divisible-by)" : ""));
  if (layers % pp != 0)
    throw UsageError(fmt::format("--pipeline-model-parallel-size {}: does not divide the model's {} layers "
                                 "(stages hold equal layer ranges). Hint: use a divisor of {}", pp, layers, layers));
}

void check_virtual_pipeline(int64_t n, int64_t pp, int64_t layers, int64_t micro_per_rank) {
  if (n == 0) return;
  const std::string flag = fmt::format("--num-layers-per-virtual-pipeline-stage {}", n);
  if (n < 1) throw UsageError(flag + ": expected at least 1 layer per model chunk");
  // Megatron: pipeline size > 1 with --overlap-p2p-communication (> 2 without, because NCCL batches
  // two sends to the same peer); our blocking sends are ordered by one global sequence, so 2 works.
  if (pp < 2)
    throw UsageError(fmt::format("{}: the interleaved schedule needs --pipeline-model-parallel-size 2 or more, got {}",
                                 flag, pp));
  if (layers % (pp * n) != 0)
    throw UsageError(fmt::format("{}: the model's {} layers are not a multiple of --pipeline-model-parallel-size {} x {} "
                                 "(each rank holds num-layers / (PP x N) chunks of N layers). Hint: use a divisor of {}",
                                 flag, layers, pp, n, layers / pp));
  if (micro_per_rank % pp != 0)
    throw UsageError(fmt::format("{}: the interleaved schedule runs micro-batches in groups of "
                                 "--pipeline-model-parallel-size {}, but each rank has {} (--global-batch-size / "
                                 "(--micro-batch-size x data-parallel size)). Hint: a global batch of a multiple of {} "
                                 "micro-batches per data-parallel rank", flag, pp, micro_per_rank, pp));
}

Grid Grid::make(int world, int rank, const GridSizes& s) {
  check_model_split(s.tp, s.pp, s.heads, s.ffn, s.vocab, s.layers);
  if (world % (s.tp * s.pp) != 0)
    throw UsageError(fmt::format("--tensor-model-parallel-size {} x --pipeline-model-parallel-size {} = {} does not "
                                 "divide the {} ranks of this run (world = TP x PP x DP). Hint: launch a multiple of "
                                 "{} ranks", s.tp, s.pp, s.tp * s.pp, world, s.tp * s.pp));
  Grid g;
  g.world = world;
  g.tp = s.tp;
  g.pp = s.pp;
  g.dp = world / (s.tp * s.pp);
  if (s.micro_batch < 1 || s.global_batch % (s.micro_batch * g.dp) != 0)
    throw UsageError(fmt::format("--global-batch-size {} is not a multiple of --micro-batch-size {} x data-parallel "
                                 "size {}", s.global_batch, s.micro_batch, g.dp));
  check_virtual_pipeline(s.virtual_layers, s.pp, s.layers, s.global_batch / (s.micro_batch * g.dp));
  g.rank = rank;
  g.tp_rank = rank % g.tp;
  g.dp_rank = (rank / g.tp) % g.dp;
  g.pp_rank = rank / (g.tp * g.dp);
  return g;
}

GridGroups GridGroups::split(Group& world, const Grid& g) {
  GridGroups out;
  // Colours: the ranks sharing every other coordinate; keys: the coordinate itself.
  out.tp = world.split(g.dp_rank + g.dp * g.pp_rank, g.tp_rank);
  out.dp = world.split(g.tp_rank + g.tp * g.pp_rank, g.dp_rank);
  out.pp = world.split(g.tp_rank + g.tp * g.dp_rank, g.pp_rank);
  return out;
}

}  // namespace cs
