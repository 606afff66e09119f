// Pipeline schedules over the stages of a pipeline group (Megatron-LM's schedules.py; Narayanan et
// al. 2021): the stage holds a contiguous range of layers, receives its input from the previous
// stage and its output gradient from the next. The caller's forward(i, slot) and backward(i,
// slot) run this rank's local micro-batch i in activation slot `slot` (the model's input, output and
// gradients are the tensors exchanged); the schedule does the sends and receives around them.
#pragma once
#include <functional>

#include "model/model.h"
#include "parallel/group.h"

namespace cs {

using MicroStep = std::function<void(int64_t micro, int64_t slot)>;

// One-forward-one-backward (PipeDream-Flush): stage s runs min(S - s - 1, M) warm-up forwards, then
// alternates one forward and one backward, then finishes the remaining backwards; at most S - s
// micro-batches are in flight (the model needs that many activation slots). Backwards run in
// micro-batch order 0 .. M - 1, as without a pipeline. b x t: the micro-batch's shape. With one
// stage it is forward, backward per micro-batch.
void run_one_f_one_b(Model& model, Group& pp, int64_t micro_batches, int64_t b, int64_t t, const MicroStep& forward,
                     const MicroStep& backward);

// Forward only (validation, evaluation): each micro-batch passes through every stage in turn.
void run_forward_only(Model& model, Group& pp, int64_t micro_batches, int64_t b, int64_t t, const MicroStep& forward);

// The activation slots stage `stage` of `stages` needs for micro_batches under 1F1B.
int64_t one_f_one_b_slots(int stage, int stages, int64_t micro_batches);

}  // namespace cs
