#include "optim/grad_clip.h"

#include <algorithm>
#include <cmath>

namespace cs {

void grad_sq_norm(Ctx& ctx, const Tensor& grads, Group& group, const Tensor& out) {
  ctx.ops.sum_squares(ctx, grads, out);
  group.all_reduce_sum(ctx, out);
}

std::vector<std::pair<int64_t, int64_t>> norm_ranges(const ParamStore& ps, int64_t begin, int64_t end) {
  std::vector<std::pair<int64_t, int64_t>> out;
  if (ps.shard().tp_rank == 0) {
    // Not the padding after the parameters (a sharded optimizer's): it holds no gradient, and a
    // count of zeros must not see it.
    end = std::min(end, ps.numel());
    if (end > begin) out.push_back({0, end - begin});
    return out;
  }
  for (const ParamSpec& s : ps.specs()) {
    if (s.split == TpSplit::None) continue;
    const int64_t lo = std::max(begin, s.offset), hi = std::min(end, s.offset + s.shape.numel());
    if (lo >= hi) continue;
    if (!out.empty() && out.back().second == lo - begin)
      out.back().second = hi - begin;
    else
      out.push_back({lo - begin, hi - begin});
  }
  return out;
}

void grad_fold_local(Ctx& ctx, const Tensor& grads, const std::vector<std::pair<int64_t, int64_t>>& ranges,
                     const Tensor& parts, const Tensor& out, FoldOp fold) {
  if (ranges.size() == 1 && ranges[0].first == 0 && ranges[0].second == grads.numel()) {
    fold(ctx, grads, out);
    return;
  }
  CS_CHECK(parts.numel() >= int64_t(ranges.size()) && parts.dtype == DType::F64)
      << ranges.size() << " ranges, " << parts.numel() << " parts";
  if (ranges.empty()) {
    ctx.backend.zero(ctx, out);
    return;
  }
  for (size_t i = 0; i < ranges.size(); ++i)
    fold(ctx, grads.slice_rows(ranges[i].first, ranges[i].second), parts.slice_rows(int64_t(i), int64_t(i) + 1));
  ctx.ops.sum(ctx, parts.slice_rows(0, int64_t(ranges.size())), out);
}

float clip_coefficient(double norm, double max_norm) {
  if (max_norm <= 0 || !std::isfinite(norm)) return 1.f;
  const double coeff = max_norm / (norm + 1e-6);
  return coeff < 1.0 ? float(coeff) : 1.f;
}

}  // namespace cs
