#include "train/loss_slots.h"


namespace cs {

LossSlots::LossSlots(Backend& backend, int64_t global_micro_batches, int64_t extra, bool per_token)
    : g_(global_micro_batches), extra_(extra), active_(global_micro_batches), per_token_(per_token),
      mem_(backend, size_t(2 * g_ + extra) * sizeof(double)),
      all_(mem_.tensor({2 * g_ + extra}, DType::F64)) {}

void LossSlots::clear(Ctx& ctx) { ctx.backend.zero(ctx, all_); }

void LossSlots::set_active(int64_t g) {
  CS_CHECK(g >= 1 && g <= g_) << g << " micro-batches in " << g_ << " slots";
  active_ = g;
}

void LossSlots::record(Ctx& ctx, const Model& model, int64_t g) {
  CS_CHECK(g >= 0 && g < active_) << "micro-batch " << g << " of " << active_;
  if (!model.runs_head()) return;  // a pipeline stage (or chunk) before the last: its slots stay zero
  ctx.backend.copy(ctx, model.loss_sum(), all_.slice_rows(g, g + 1));
  const double count = double(model.target_count());  // known on the host: the targets came from it
  ctx.backend.upload(ctx, &count, all_.slice_rows(g_ + g, g_ + g + 1));
}

void LossSlots::reduce(Ctx& ctx, Group& dp) {
  if (dp.size() > 1) dp.all_reduce_sum(ctx, all_.slice_rows(0, 2 * g_));
}

const std::vector<double>& LossSlots::read(Ctx& ctx) {
  host_.resize(size_t(all_.numel()));  // allocated at the first read only
  ctx.backend.download(ctx, all_, host_.data());
  return host_;
}

double LossSlots::mean_loss() const {
  if (per_token_) {  // added in global micro-batch order: the same arithmetic for any layout
    double sum = 0, n = 0;
    for (int64_t g = 0; g < active_; ++g) {
      sum += host_[size_t(g)];
      n += host_[size_t(g_ + g)];
    }
    return n > 0 ? sum / n : 0.0;
  }
  double loss = 0;
  for (int64_t g = 0; g < active_; ++g) {
    const double count = host_[size_t(g_ + g)];
    loss += (count > 0 ? host_[size_t(g)] / count : 0.0) / double(active_);
  }
  return loss;
}

}  // namespace cs
