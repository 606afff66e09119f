#include "optim/grad_clip.h"

#include <cmath>

namespace cs {

double grad_norm_global(const Ops& ops, const Tensor& grads, Group& group) {
  double total = ops.sum_squares(grads);
  group.all_reduce_sum(&total, 1);
  return std::sqrt(total);
}

void clip_grads(const Ops& ops, Tensor& grads, double norm, double max_norm) {
  if (max_norm <= 0 || !std::isfinite(norm)) return;
  const double coeff = max_norm / (norm + 1e-6);
  if (coeff < 1.0) ops.scale(grads, float(coeff));
}

}  // namespace cs
