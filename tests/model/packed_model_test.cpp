// Packing (Megatron's --reset-attention-mask --reset-position-ids) through the whole model: a
// packed micro-batch gives, for every sample in it, the same loss and the same gradient
// contribution as that sample run alone (within fp32 rounding), for RoPE (positions restart at 0)
// and ALiBi (distances within the sample), with and without full recomputation; and without
// segments the same tokens attend across the samples, so the losses differ (the check can fail).
// Positions given without segments (--reset-position-ids alone) reach RoPE as given.
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

// Positions without segments (Megatron's --reset-position-ids alone) reach RoPE as given: positions
// 0.. given equal none given; restarting them at 30 leaves the losses of the first 30 tokens of
// each row alone (they attend only to tokens before the restart) and changes the later ones
// (which attend across it), under RoPE; ALiBi does not use positions at all.
TEST_P(PackedModel, PositionsWithoutSegments) {
  test::DeviceEnv env;
  SingleGroup tp;
  Model m(config(), *env, tp, 2, kT);
  m.params().init(*env, 8);
  std::mt19937 rng(4);
  std::vector<int32_t> tokens(2 * kT), early(2 * kT), late(2 * kT), plain(2 * kT), restarted(2 * kT);
  for (int64_t i = 0; i < 2 * kT; ++i) {
    const int32_t q = int32_t(i % kT), target = int32_t(rng() % 101);
    tokens[size_t(i)] = int32_t(rng() % 101);
    early[size_t(i)] = q < 30 ? target : -1;
    late[size_t(i)] = q < 30 ? -1 : target;
    plain[size_t(i)] = q;
    restarted[size_t(i)] = q < 30 ? q : q - 30;
  }
  auto loss = [&](const std::vector<int32_t>& targets, const int32_t* positions) {
    m.forward(tokens.data(), targets.data(), 2, kT, 0, nullptr, positions);
    return read_f64(*env, m.loss_sum())[0];
  };
  // The equal cases compute the same products in the same order (measured: the same bits); the
  // restart moves the late loss by 1.2e-5 of itself (small-init attention is nearly uniform).
  for (const auto* targets : {&early, &late}) {
    const double none = loss(*targets, nullptr);
    EXPECT_NEAR(loss(*targets, plain.data()), none, 1e-9 * none);
    const double moved = loss(*targets, restarted.data());
    if (targets == &late && config().position == PositionType::Rope)
      EXPECT_GT(std::fabs(moved - none), 1e-6 * none);
    else
      EXPECT_NEAR(moved, none, 1e-9 * none);
  }
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
