// Dynamic loss scaling for fp16 (Micikevicius et al. 2018; Megatron's DynamicGradScaler): an
// overflowing step is skipped and, after `hysteresis` overflows, the scale halves (not below
// min_scale); after `window` clean steps in a row it doubles. Without --fp16 the scale is a
// constant 1 (bf16 and fp32 need none).
#pragma once
#include <cstdint>

namespace cs {

class LossScaler {
 public:
  // dynamic=false: a constant scale of `initial`.
  LossScaler(bool dynamic, double initial, int64_t window, int64_t hysteresis, double min_scale);
  double scale() const { return scale_; }
  // Records one step's outcome (found_inf: some gradient was inf or nan).
  void update(bool found_inf);

  // State for checkpoints.
  struct State {
    double scale;
    int64_t growth_tracker, hysteresis_tracker;
  };
  State state() const { return {scale_, growth_tracker_, hysteresis_tracker_}; }
  void set_state(const State& s);

 private:
  bool dynamic_;
  double scale_, min_scale_;
  int64_t window_, hysteresis_, growth_tracker_ = 0, hysteresis_tracker_;
};

}  // namespace cs
