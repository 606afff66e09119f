#include "train/train_step.h"

#include <cmath>
#include <vector>

#include "backend/host_copy.h"
#include "optim/grad_clip.h"

namespace cs {

TrainStep::TrainStep(Model& model, AdamW& adam, LossScaler& scaler, Group& world, int64_t n_micro,
                     double clip_grad, bool fp16)
    : model_(model), adam_(adam), scaler_(scaler), world_(world), n_micro_(n_micro), clip_grad_(clip_grad),
      fp16_(fp16), scalars_mem_(model.ctx().backend, size_t(n_micro + 1) * sizeof(double)),
      scalars_(scalars_mem_.tensor({n_micro + 1}, DType::F64)) {}

StepOutcome TrainStep::run(const std::function<void(int64_t, MicroBatch&)>& fill, MicroBatch& batch, double lr,
                           const std::function<void(Tensor&)>& grad_hook) {
  Ctx& ctx = model_.ctx();
  StepOutcome out;
  out.loss_scale = scaler_.scale();
  model_.zero_grad();
  std::vector<int64_t> counts(static_cast<size_t>(n_micro_));
  for (int64_t mi = 0; mi < n_micro_; ++mi) {
    fill(mi, batch);
    model_.forward(batch.tokens(), batch.targets(), batch.batch(), batch.seq_length());
    counts[size_t(mi)] = model_.target_count();
    ctx.backend.copy(ctx, model_.loss_sum(), scalars_.slice_rows(mi, mi + 1));
    // d(loss_scale * mean over micro-batches of each micro-batch's mean loss)
    model_.backward(float(out.loss_scale / (double(model_.target_count()) * double(n_micro_))));
  }
  Tensor grads = model_.params().flat_grads();
  if (grad_hook) grad_hook(grads);
  if (out.loss_scale != 1.0) ctx.ops.scale(ctx, grads, float(1.0 / out.loss_scale));
  grad_sq_norm(ctx, grads, world_, scalars_.slice_rows(n_micro_, n_micro_ + 1));
  const std::vector<double> s = read_f64(ctx, scalars_);  // the step's one host read
  for (int64_t mi = 0; mi < n_micro_; ++mi) {
    const double micro = counts[size_t(mi)] ? s[size_t(mi)] / double(counts[size_t(mi)]) : 0.0;
    out.loss += micro / double(n_micro_);
  }
  out.grad_norm = std::sqrt(s[size_t(n_micro_)]);
  out.found_inf = !std::isfinite(out.grad_norm);
  if (fp16_ && out.found_inf) {
    out.skipped = true;
  } else if (out.found_inf || !std::isfinite(out.loss)) {
    out.nan = true;
  } else {
    clip_grads(ctx, grads, out.grad_norm, clip_grad_);
    adam_.step(model_.params(), lr);
    out.stepped = true;
  }
  scaler_.update(out.found_inf);
  return out;
}

}  // namespace cs
