// The losses of one global batch, kept on the device: slot g holds the loss sum of global
// micro-batch g and slot G + g its count of trained targets (G micro-batches of the global batch,
// over every data-parallel rank; a rank fills the slots of its own micro-batches, the others stay
// zero). Summed over the data-parallel group, every rank holds every micro-batch's sum and count,
// and the host reads them once: the batch loss is the mean over micro-batches of each one's mean
// loss, added in global micro-batch order, so one process and any data-parallel layout compute it
// with the same arithmetic.
#pragma once
#include <vector>

#include "backend/device_buffer.h"
#include "model/model.h"

namespace cs {

class LossSlots {
 public:
  // extra: more F64 slots after the 2 G (e.g. the squared gradient norm), untouched here.
  // per_token: mean_loss() is the sum of every loss over every counted target (instruction data).
  LossSlots(Backend& backend, int64_t global_micro_batches, int64_t extra = 0, bool per_token = false);
  // Zeroes every slot.
  void clear(Ctx& ctx);
  // The step's micro-batches: the first g of the global_micro_batches slots (a batch-size rampup's
  // smaller batches); the loss is their mean.
  void set_active(int64_t g);
  // Records the model's last forward as global micro-batch g (the last pipeline stage: the others
  // have no loss, and their slots stay zero until the sum over the pipeline group).
  void record(Ctx& ctx, const Model& model, int64_t g);
  // Sums the 2 G loss slots over the group (a no-op for a group of one).
  void reduce(Ctx& ctx, Group& dp);
  // Extra slot i (after the loss slots), for a caller's own scalar.
  Tensor extra(int64_t i) const { return all_.slice_rows(2 * g_ + i, 2 * g_ + i + 1); }
  // The first n extra slots, to reduce together.
  Tensor extras(int64_t n) const { return all_.slice_rows(2 * g_, 2 * g_ + n); }
  // Reads every slot back (the one host read); mean_loss() then works on the copy.
  const std::vector<double>& read(Ctx& ctx);
  // The mean over micro-batches of each one's mean loss; per token, sum of losses / sum of counts.
  double mean_loss() const;
  double extra_value(int64_t i) const { return host_[size_t(2 * g_ + i)]; }

 private:
  int64_t g_, extra_, active_;
  bool per_token_;
  DeviceBuffer mem_;
  Tensor all_;
  std::vector<double> host_;
};

}  // namespace cs
