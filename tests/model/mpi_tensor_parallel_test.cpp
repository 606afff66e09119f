// Tensor and sequence parallelism under mpiexec (2 and 4 ranks; every rank is one tensor-parallel
// rank of a group of the world's size): each rank runs the whole model in one process as the
// reference and its own shard of the same initial weights beside it, on the same two micro-batches
// (gradients accumulate over both), and compares: the per-position losses, the mean loss, every
// parameter gradient against the rank's slice of the reference's (W_pack by its heads' q, k and v
// rows, o_proj and down_proj by columns, the vocabulary by rows, norms whole), and the input
// gradient of a stage without the embedding. RoPE and ALiBi (the ALiBi slopes sliced to the rank's
// heads), with and without sequence parallelism, with full recomputation. Tolerances: fp32
// summation-order differences only (the sums over ranks split dot products the reference adds in
// one order).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "backend/host_copy.h"
#include "closeness.h"
#include "device_env.h"
#include "model/model.h"
#include "parallel/mpi_group.h"

namespace cs {
namespace {

struct Case {
  PositionType position;
  bool sequence_parallel, recompute;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << position_name(c.position) << (c.sequence_parallel ? " sp" : " tp") << (c.recompute ? " recompute" : "");
}

std::string case_name(const testing::TestParamInfo<Case>& i) {
  return std::string(position_name(i.param.position)) + (i.param.sequence_parallel ? "_sp" : "_tp") +
         (i.param.recompute ? "_recompute" : "");
}

ModelConfig config(const Case& c) {
  ModelConfig cfg = model_preset("tiny");
  cfg.num_heads = 4;  // divisible by 2 and 4 ranks; head dim 12
  cfg.vocab_size = 104;
  cfg.position = c.position;
  cfg.recompute = c.recompute;
  return cfg;
}

std::vector<int32_t> ids(int64_t n, int mul, int add, int vocab) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = int32_t((i * mul + add) % vocab);
  return v;
}

std::vector<float> host(Ctx& ctx, const Tensor& t) { return read_f32(ctx, t); }

class TensorParallel : public testing::TestWithParam<Case> {
 protected:
  void SetUp() override { world_ = MpiGroup::world(60); }
  std::unique_ptr<MpiGroup> world_;
};

TEST_P(TensorParallel, ShardMatchesTheWholeModel) {
  const Case c = GetParam();
  const ModelConfig cfg = config(c);
  const int tp = world_->size(), rank = world_->rank();
  const int64_t b = 2, t = 8, n = b * t;
  test::DeviceEnv env;
  Ctx& ctx = *env.ctx;
  SingleGroup one("tp");
  Model whole(cfg, ctx, one, b, t);
  ModelShard shard;
  shard.tp_rank = rank;
  shard.tp_size = tp;
  shard.sequence_parallel = c.sequence_parallel;
  Model part(cfg, ctx, *world_, b, t, shard);
  whole.params().init(ctx, 11);
  part.params().init(ctx, 11);
  whole.zero_grad();
  part.zero_grad();
  for (int micro = 0; micro < 2; ++micro) {
    const std::vector<int32_t> tok = ids(n, 7 + micro, 3, 104), tgt = ids(n, 5, 1 + micro, 104);
    std::vector<int32_t> targets = tgt;
    targets[3] = -1;  // an ignored position
    whole.forward(tok.data(), targets.data(), b, t);
    part.forward(tok.data(), targets.data(), b, t);
    EXPECT_TRUE(test::all_close(host(ctx, part.losses()), host(ctx, whole.losses()), 1e-6, 1e-5, "losses"));
    EXPECT_NEAR(part.mean_loss(), whole.mean_loss(), 1e-6 * whole.mean_loss());
    whole.backward(0.5f);
    part.backward(0.5f);
  }
  part.reduce_sequence_parallel_grads();
  const std::vector<float> all = host(ctx, whole.params().flat_grads());
  const std::vector<float> mine = host(ctx, part.params().flat_grads());
  for (const ParamSpec& s : part.params().specs()) {
    const ParamSpec* ref = whole.params().find(s.name);
    ASSERT_NE(ref, nullptr) << s.name;
    std::vector<float> want(size_t(s.shape.numel()));
    take_shard_slice(s, shard, cfg.hidden_size, all.data() + ref->offset, want.data());
    const double scale = test::max_abs(want);
    EXPECT_TRUE(test::all_close(mine.data() + s.offset, want.data(), s.shape.numel(), 1e-5 * scale, 1e-4,
                                s.name + " on rank " + std::to_string(rank)));
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, TensorParallel,
                         testing::Values(Case{PositionType::Rope, false, false}, Case{PositionType::Alibi, false, false},
                                         Case{PositionType::Rope, true, false}, Case{PositionType::Alibi, true, true}),
                         case_name);

// A stage without the embedding (the residual input handed over by a previous stage) and with
// sequence parallelism: the gradient it leaves in input_grad() is this rank's rows of the whole
// model's.
TEST(TensorParallelStage, InputGradientIsTheRanksRowsOfTheWholeModels) {
  auto world = MpiGroup::world(60);
  const int tp = world->size(), rank = world->rank();
  ModelConfig cfg = config({PositionType::Alibi, true, false});
  const int64_t b = 1, t = 8, n = b * t, d = cfg.hidden_size, ns = n / tp;
  test::DeviceEnv env;
  Ctx& ctx = *env.ctx;
  SingleGroup one("tp");
  ModelShard whole_stage{1, -1, false, true, 0, 1};
  ModelShard shard{1, -1, false, true, rank, tp, true};
  Model whole(cfg, ctx, one, b, t, whole_stage);
  Model part(cfg, ctx, *world, b, t, shard);
  whole.params().init(ctx, 5);
  part.params().init(ctx, 5);
  std::vector<float> x(size_t(n * d));
  for (size_t i = 0; i < x.size(); ++i) x[i] = float((i * 37) % 101) / 50.f - 1.f;
  ctx.backend.upload(ctx, x.data(), whole.input(b, t));
  ctx.backend.upload(ctx, x.data() + rank * ns * d, part.input(b, t));
  const std::vector<int32_t> tgt = ids(n, 3, 2, 104);
  whole.forward(nullptr, tgt.data(), b, t);
  part.forward(nullptr, tgt.data(), b, t);
  EXPECT_NEAR(part.mean_loss(), whole.mean_loss(), 1e-6 * whole.mean_loss());
  whole.zero_grad();
  part.zero_grad();
  whole.backward();
  part.backward();
  const std::vector<float> all = host(ctx, whole.input_grad());
  EXPECT_TRUE(test::all_close(host(ctx, part.input_grad()),
                              std::vector<float>(all.begin() + rank * ns * d, all.begin() + (rank + 1) * ns * d),
                              1e-5 * test::max_abs(all), 1e-4, "input gradient rows"));
}

}  // namespace
}  // namespace cs
