// The ranges of the flat gradient buffer that the global reductions (the gradient norm, the
// parameters' norm, --log-num-zeros-in-grad's count) read on one rank: every parameter once over
// the tensor-parallel ranks (replicated ones on rank 0 only), never the padding a sharded
// optimizer adds after the parameters; and grad_fold_local's result over them, with count_zeros
// and sum_squares.
#include <gtest/gtest.h>

#include <vector>

#include "backend/host_copy.h"
#include "device_env.h"
#include "model/params.h"
#include "optim/grad_clip.h"

namespace cs {
namespace {

ModelConfig tiny_model() {
  ModelConfig c = model_preset("tiny");
  c.num_heads = 4;
  c.hidden_size = 48;
  c.vocab_size = 102;
  return c;
}

int64_t covered(const std::vector<std::pair<int64_t, int64_t>>& r) {
  int64_t n = 0;
  for (const auto& [lo, hi] : r) n += hi - lo;
  return n;
}

TEST(GradRanges, ThePaddingAfterTheParametersIsNeverRead) {
  test::DeviceEnv env;
  ParamStore ps(tiny_model(), ModelShard::whole(), env.ctx->backend);
  const int64_t n = ps.numel();
  ps.pad_to(*env, n + 5);  // a multiple that leaves n + 5 - n elements of padding
  ASSERT_GT(ps.padded_numel(), n);
  EXPECT_EQ(norm_ranges(ps, 0, ps.padded_numel()), (std::vector<std::pair<int64_t, int64_t>>{{0, n}}));
  // The last shard of a sharded optimizer: its window runs into the padding.
  const int64_t half = ps.padded_numel() / 2;
  EXPECT_EQ(norm_ranges(ps, half, ps.padded_numel()), (std::vector<std::pair<int64_t, int64_t>>{{0, n - half}}));
  // All-zero gradients: the count is the parameters', not the padded buffer's.
  const Tensor grads = ps.padded_grads();
  env.ctx->backend.zero(*env, grads);
  DeviceBuffer parts(env.ctx->backend, sizeof(double)), out(env.ctx->backend, sizeof(double));
  grad_fold_local(*env, grads, norm_ranges(ps, 0, ps.padded_numel()), parts.tensor({1}, DType::F64),
                  out.tensor({1}, DType::F64), env.ctx->ops.count_zeros);
  EXPECT_EQ(read_f64(*env, out.tensor({1}, DType::F64))[0], double(n));
}

TEST(GradRanges, ReplicatedParametersCountOnTensorParallelRankZeroOnly) {
  test::DeviceEnv env;
  const ModelConfig c = tiny_model();
  ParamStore r0(c, ModelShard{0, -1, true, true, 0, 2}, env.ctx->backend),
      r1(c, ModelShard{0, -1, true, true, 1, 2}, env.ctx->backend);
  int64_t replicated = 0;
  for (const ParamSpec& s : r1.specs())
    if (s.split == TpSplit::None) replicated += s.shape.numel();
  ASSERT_GT(replicated, 0);  // the norm weights
  EXPECT_EQ(covered(norm_ranges(r0, 0, r0.numel())), r0.numel());
  EXPECT_EQ(covered(norm_ranges(r1, 0, r1.numel())), r1.numel() - replicated);
  // Over the two ranks every element of the model once: the sums of squares of all-ones gradients
  // add up to the whole model's parameter count.
  ParamStore whole(c, ModelShard::whole(), env.ctx->backend);
  double total = 0;
  for (ParamStore* ps : {&r0, &r1}) {
    const Tensor g = ps->flat_grads();
    std::vector<float> ones(size_t(g.numel()), 1.f);
    env.ctx->backend.upload(*env, ones.data(), g);
    const auto ranges = norm_ranges(*ps, 0, ps->numel());
    DeviceBuffer parts(env.ctx->backend, ranges.size() * sizeof(double)), out(env.ctx->backend, sizeof(double));
    grad_fold_local(*env, g, ranges, parts.tensor({int64_t(ranges.size())}, DType::F64), out.tensor({1}, DType::F64),
                    env.ctx->ops.sum_squares);
    total += read_f64(*env, out.tensor({1}, DType::F64))[0];
  }
  EXPECT_EQ(total, double(whole.numel()));
}

}  // namespace
}  // namespace cs
