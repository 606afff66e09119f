// Packing (Megatron's --reset-attention-mask --reset-position-ids) through the whole model: a
// packed micro-batch gives, for every sample in it, the same loss and the same gradient
// contribution as that sample run alone (within fp32 rounding), for RoPE (positions restart at 0)
// and ALiBi (distances within the sample), with and without full recomputation; and without
// segments the same tokens attend across the samples, so the losses differ (the check can fail).
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "backend/host_copy.h"
#include "closeness.h"
#include "device_env.h"
#include "model/model.h"

namespace cs {
namespace {
using test::all_close;

struct Pass {
  double loss_sum = 0;
  std::vector<float> grads;
};

class PackedModel : public ::testing::TestWithParam<std::tuple<PositionType, bool>> {
 protected:
  ModelConfig config() const {
    ModelConfig c = model_preset("tiny");  // 2 layers, 3 heads (ALiBi slopes of a non power of two)
    c.position = std::get<0>(GetParam());
    c.recompute = std::get<1>(GetParam());
    return c;
  }
  // Row lengths of the packed micro-batch (2 x 64): samples of 20, 25, 1 and 18 tokens, then one
  // of 64.
  const std::vector<std::vector<int64_t>> rows_{{20, 25, 1, 18}, {64}};
  static constexpr int64_t kT = 64;
};

TEST_P(PackedModel, EverySampleAsIfAlone) {
  test::DeviceEnv env;
  SingleGroup tp;
  Model m(config(), *env, tp, 2, kT);
  m.params().init(*env, 7);
  std::mt19937 rng(3);
  std::vector<int32_t> tokens(2 * kT), targets(2 * kT), segments(2 * kT);
  for (int64_t i = 0; i < 2 * kT; ++i) {
    tokens[size_t(i)] = int32_t(rng() % 101);
    targets[size_t(i)] = rng() % 4 == 0 ? -1 : int32_t(rng() % 101);  // some context positions
  }
  int32_t id = 0;
  for (size_t r = 0; r < rows_.size(); ++r) {
    int64_t pos = int64_t(r) * kT;
    for (const int64_t len : rows_[r]) {
      std::fill_n(segments.begin() + pos, len, id++ % 2);  // runs 0, 1, 0, 1: each run a sample
      pos += len;
    }
  }
  auto grads = [&] { return read_f32(*env, m.params().flat_grads()); };

  Pass packed;
  m.zero_grad();
  m.forward(tokens.data(), targets.data(), 2, kT, 0, segments.data());
  packed.loss_sum = read_f64(*env, m.loss_sum())[0];
  m.backward(1.f);
  packed.grads = grads();

  Pass alone;
  m.zero_grad();
  for (size_t r = 0; r < rows_.size(); ++r) {
    int64_t pos = int64_t(r) * kT;
    for (const int64_t len : rows_[r]) {
      m.forward(tokens.data() + pos, targets.data() + pos, 1, len);
      alone.loss_sum += read_f64(*env, m.loss_sum())[0];
      m.backward(1.f);  // gradients accumulate over the samples
      pos += len;
    }
  }
  alone.grads = grads();
  EXPECT_NEAR(packed.loss_sum, alone.loss_sum, 1e-5 * std::fabs(alone.loss_sum));
  double mx = 0;
  for (float g : alone.grads) mx = std::max(mx, double(std::fabs(g)));
  EXPECT_TRUE(all_close(packed.grads, alone.grads, 1e-5 * mx, 1e-4, "packed gradients"));

  // Without the segments the samples see each other: the loss is not the samples' sum (by 10x
  // more than the packed run may differ from it; small-init attention is nearly uniform).
  m.forward(tokens.data(), targets.data(), 2, kT, 0);
  EXPECT_GT(std::fabs(read_f64(*env, m.loss_sum())[0] - alone.loss_sum), 1e-4 * std::fabs(alone.loss_sum));
}

INSTANTIATE_TEST_SUITE_P(Positions, PackedModel,
                         ::testing::Combine(::testing::Values(PositionType::Rope, PositionType::Alibi),
                                            ::testing::Bool()),
                         [](const ::testing::TestParamInfo<std::tuple<PositionType, bool>>& info) {
                           return std::string(std::get<0>(info.param) == PositionType::Rope ? "rope" : "alibi") +
                                  (std::get<1>(info.param) ? "_recompute" : "");
                         });

}  // namespace
}  // namespace cs
