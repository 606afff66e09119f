#include "train/shard_layout.h"

#include <fmt/core.h>

#include "core/error.h"
#include "parallel/grid.h"

namespace cs {

void check_parallel_layout(const ModelConfig& cfg, int64_t tp, int64_t pp) {
  check_model_split(tp, pp, cfg.num_heads, cfg.ffn_hidden_size, cfg.vocab_size, cfg.num_layers);
}

int64_t pipeline_stage(const ParamSpec& s, const ModelConfig& cfg, int64_t pp) {
  if (s.layer == -1) return 0;
  if (s.layer == -2) return pp - 1;
  return s.layer / (cfg.num_layers / pp);
}

TpSlice tp_slice(const ParamSpec& s, const ModelConfig& cfg, int64_t tp, int64_t rank) {
  CS_CHECK(rank >= 0 && rank < tp) << s.name << " rank " << rank << " of " << tp;
  const Shape& g = s.shape;
  switch (s.split) {
    case TpSplit::None:
      return {g, std::vector<int64_t>(size_t(g.ndim), 0), {}};
    case TpSplit::Column:
    case TpSplit::Vocab: {
      const int64_t rows = g[0] / tp;
      return {Shape{rows, g[1]}, {rank * rows, 0}, {}};
    }
    case TpSplit::Row: {
      const int64_t cols = g[1] / tp;
      return {Shape{g[0], cols}, {0, rank * cols}, {}};
    }
    case TpSplit::ColumnQkvHeads: {
      // The rank's heads are rows [rank*D/tp, (rank+1)*D/tp) of each of the q, k and v blocks.
      const int64_t d = cfg.hidden_size, rows = d / tp;
      return {Shape{3 * rows, g[1]}, {rank * rows, 0},
              {{rank * rows, rows}, {d + rank * rows, rows}, {2 * d + rank * rows, rows}}};
    }
  }
  CS_CHECK(false) << "unknown split of " << s.name;
  return {};
}

std::string model_shard_name(int64_t tp_rank, int64_t pp_rank) {
  return fmt::format("model-tp{:02d}-pp{:03d}.safetensors", tp_rank, pp_rank);
}

}  // namespace cs
