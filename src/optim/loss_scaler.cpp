#include "optim/loss_scaler.h"

#include <algorithm>

namespace cs {

LossScaler::LossScaler(bool dynamic, double initial, int64_t window, int64_t hysteresis,
                       double min_scale)
    : dynamic_(dynamic), scale_(initial), min_scale_(min_scale), window_(window),
      hysteresis_(hysteresis), hysteresis_tracker_(hysteresis) {}

void LossScaler::update(bool found_inf) {
  if (!dynamic_) return;
  if (found_inf) {
    growth_tracker_ = 0;
    if (--hysteresis_tracker_ <= 0) scale_ = std::max(scale_ * 0.5, min_scale_);
  } else if (++growth_tracker_ == window_) {
    growth_tracker_ = 0;
    hysteresis_tracker_ = hysteresis_;
    scale_ *= 2.0;
  }
}

void LossScaler::set_state(const State& s) {
  scale_ = s.scale;
  growth_tracker_ = s.growth_tracker;
  hysteresis_tracker_ = s.hysteresis_tracker;
}

}  // namespace cs
