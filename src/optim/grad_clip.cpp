#include "optim/grad_clip.h"

#include <cmath>

namespace cs {

void grad_sq_norm(Ctx& ctx, const Tensor& grads, Group& group, const Tensor& out) {
  ctx.ops.sum_squares(ctx, grads, out);
  group.all_reduce_sum(ctx, out);
}

void clip_grads(Ctx& ctx, const Tensor& grads, double norm, double max_norm) {
  if (max_norm <= 0 || !std::isfinite(norm)) return;
  const double coeff = max_norm / (norm + 1e-6);
  if (coeff < 1.0) ctx.ops.scale(ctx, grads, float(coeff));
}

}  // namespace cs
