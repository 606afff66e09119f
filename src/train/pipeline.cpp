#include "train/pipeline.h"

#include <algorithm>

namespace cs {

int64_t one_f_one_b_slots(int stage, int stages, int64_t micro_batches) {
  return std::max<int64_t>(1, std::min<int64_t>(stages - stage, micro_batches));
}

void run_one_f_one_b(Model& model, Group& pp, int64_t micro_batches, int64_t b, int64_t t, const MicroStep& forward,
                     const MicroStep& backward) {
  const int s = pp.rank(), stages = pp.size();
  const bool first = s == 0, last = s == stages - 1;
  const int64_t m = micro_batches, warmup = std::min<int64_t>(stages - s - 1, m), steady = m - warmup;
  CS_CHECK(model.in_flight() >= one_f_one_b_slots(s, stages, m))
      << model.in_flight() << " activation slots for stage " << s << " of " << stages;
  auto slot = [&](int64_t i) { return i % model.in_flight(); };
  auto input = [&](int64_t i) { return model.input(b, t, slot(i)); };
  // Warm-up: forwards only, each output sent on as soon as it is made.
  for (int64_t i = 0; i < warmup; ++i) {
    if (!first) pp.recv(model.ctx(), input(i), s - 1);
    forward(i, slot(i));
    if (!last) pp.send(model.ctx(), model.output(), s + 1);
  }
  if (steady > 0 && !first) pp.recv(model.ctx(), input(warmup), s - 1);
  // Steady state: forward micro-batch warmup + j, then backward micro-batch j.
  for (int64_t j = 0; j < steady; ++j) {
    forward(warmup + j, slot(warmup + j));
    if (!last) {
      const Tensor out = model.output();
      pp.send_recv(model.ctx(), out, s + 1, model.output_grad(slot(j)), s + 1);
    }
    backward(j, slot(j));
    if (first) continue;
    if (j + 1 < steady)
      pp.send_recv(model.ctx(), model.input_grad(), s - 1, input(warmup + j + 1), s - 1);
    else
      pp.send(model.ctx(), model.input_grad(), s - 1);
  }
  // Cool-down: the backwards of the warm-up's micro-batches.
  for (int64_t i = steady; i < m; ++i) {
    if (!last) pp.recv(model.ctx(), model.output_grad(slot(i)), s + 1);
    backward(i, slot(i));
    if (!first) pp.send(model.ctx(), model.input_grad(), s - 1);
  }
}

void run_forward_only(Model& model, Group& pp, int64_t micro_batches, int64_t b, int64_t t, const MicroStep& forward) {
  const int s = pp.rank();
  const bool first = s == 0, last = s == pp.size() - 1;
  for (int64_t i = 0; i < micro_batches; ++i) {
    if (!first) pp.recv(model.ctx(), model.input(b, t, 0), s - 1);
    forward(i, 0);
    if (!last) pp.send(model.ctx(), model.output(), s + 1);
  }
}

}  // namespace cs
