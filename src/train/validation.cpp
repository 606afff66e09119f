#include "train/validation.h"

#include <vector>

#include "backend/host_copy.h"

namespace cs {

Validator::Validator(Model& model, const BlendedDataset& data, int64_t micro_batches, int64_t consumed)
    : model_(model), data_(data), n_micro_(micro_batches), consumed_(consumed),
      sums_mem_(model.ctx().backend, size_t(micro_batches) * sizeof(double)),
      sums_(sums_mem_.tensor({micro_batches}, DType::F64)) {}

double Validator::evaluate(MicroBatch& batch) {
  Ctx& ctx = model_.ctx();
  std::vector<int64_t> counts(static_cast<size_t>(n_micro_));
  for (int64_t k = 0; k < n_micro_; ++k) {
    batch.fill(data_, consumed_);
    consumed_ += batch.batch();
    model_.forward(batch.tokens(), batch.targets(), batch.batch(), batch.seq_length());
    counts[size_t(k)] = model_.target_count();
    ctx.backend.copy(ctx, model_.loss_sum(), sums_.slice_rows(k, k + 1));
  }
  const std::vector<double> s = read_f64(ctx, sums_);
  double total = 0;
  for (int64_t k = 0; k < n_micro_; ++k) total += counts[size_t(k)] ? s[size_t(k)] / double(counts[size_t(k)]) : 0.0;
  return total / double(n_micro_);
}

}  // namespace cs
