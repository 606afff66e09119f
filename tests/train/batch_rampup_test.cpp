// --rampup-batch-size: every iteration's global batch and the run's iteration count are Megatron's
// (tests/fixtures/rampup: Megatron-core's own calculator and update_train_iters loop, written by
// tools/fixtures/make_rampup_fixture.py); a ramped run equals, bit for bit, runs of its fixed batch sizes joined
// by resumes (the batch grows, the samples and the schedule go on); a ramped run resumes exactly
// mid-rampup; bad settings are one usage error naming the flag.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "core/error.h"
#include "data/indexed_dataset.h"
#include "train/batch_rampup.h"
#include "train/trainer.h"
#include "device_env.h"
#include "train/train_fixture.h"

namespace cs {
namespace {
namespace fs = std::filesystem;

TEST(BatchRampup, EveryIterationsBatchAndTheIterationCountAreMegatrons) {
  std::ifstream f(std::string(CS_SOURCE_DIR) + "/tests/fixtures/rampup/megatron_rampup.json");
  ASSERT_TRUE(f.good());
  const nlohmann::json cases = nlohmann::json::parse(f);
  ASSERT_EQ(cases.size(), 4u);
  for (const nlohmann::json& c : cases) {
    const BatchRampup r{c["start"].get<int64_t>(), c["increment"].get<int64_t>(), c["samples"].get<int64_t>()};
    const int64_t global = c["global_batch"].get<int64_t>();
    SCOPED_TRACE(testing::Message() << "rampup " << r.start << " " << r.increment << " " << r.samples);
    int64_t consumed = 0, iterations = 0;
    for (const nlohmann::json& run : c["rampup_batches"]) {
      for (int64_t i = 0; i < run[1].get<int64_t>(); ++i, ++iterations) {
        ASSERT_EQ(r.global_batch(consumed, global), run[0].get<int64_t>()) << "after " << consumed << " samples";
        consumed += run[0].get<int64_t>();
      }
    }
    EXPECT_EQ(consumed, c["rampup_consumed"].get<int64_t>());
    EXPECT_EQ(r.global_batch(consumed, global), c["after_rampup"].get<int64_t>());
    EXPECT_EQ(r.global_batch(consumed * 10, global), global);
    EXPECT_EQ(r.train_iterations(c["train_samples"].get<int64_t>(), global), c["train_iters"].get<int64_t>());
    // The batches taken, in order (those of the rampup, then the global batch).
    std::vector<int64_t> taken;
    for (const nlohmann::json& run : c["rampup_batches"]) taken.push_back(run[0].get<int64_t>());
    if (taken.back() != global) taken.push_back(global);
    EXPECT_EQ(r.sizes(global), taken);
  }
  // A steep rampup skips batches: 64, then past its 63 samples 128 (96 is never taken).
  EXPECT_EQ(BatchRampup({64, 32, 63}).sizes(128), (std::vector<int64_t>{64, 128}));
  EXPECT_NO_THROW(BatchRampup({64, 32, 63}).check_split(128, 64, 1));
  const BatchRampup off;
  EXPECT_EQ(off.global_batch(12345, 64), 64);
  EXPECT_EQ(off.sizes(64), std::vector<int64_t>{64});
  EXPECT_EQ(off.train_iterations(1000, 64), 15);
}

void expect_usage(const std::function<void()>& f, const std::string& part) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one with: " << part;
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

TEST(BatchRampup, BadSettingsAreOneLineNamingTheFlag) {
  expect_usage([] { BatchRampup{8, 4, 100}.check(8); }, "the start batch must be below --global-batch-size 8");
  expect_usage([] { BatchRampup{4, 5, 100}.check(16); }, "--global-batch-size 16 minus the start batch (12) is not a "
                                                         "multiple of the increment 5");
  expect_usage([] { BatchRampup{4, 0, 100}.check(16); }, "each at least 1");
  expect_usage([] { BatchRampup{4, 4, 0}.check(16); }, "each at least 1");
  expect_usage([] { BatchRampup{0, 16, 1000}.check(64); }, "--rampup-batch-size 0 16 1000: expected a start batch");
  expect_usage([] { BatchRampup{-4, 4, 100}.check(16); }, "each at least 1");
  // Its iterations are walked one by one: a rampup of 10^7 or more is refused, not a hang.
  expect_usage([] { BatchRampup{1, 1, 20'000'000}.check(2); }, "the rampup would take about 20000000 iterations");
  EXPECT_NO_THROW(BatchRampup({4, 4, 100}).check(16));
  // Each batch split over micro-batches and data-parallel ranks: 4 and 8 split into 2 x 2, 6 does not.
  EXPECT_NO_THROW(BatchRampup({4, 4, 100}).check_split(16, 2, 2));
  expect_usage([] { BatchRampup{4, 2, 100}.check_split(16, 2, 2); }, "its global batch 6 is not a multiple of "
                                                                     "--micro-batch-size 2 x data-parallel size 2");
  // The rampup alone (4 x 4 + 8 = 24 samples) passes --train-samples 20.
  expect_usage([] { BatchRampup{4, 4, 16}.train_iterations(20, 8); }, "alone takes 24 samples in 5 iterations");
  EXPECT_EQ(BatchRampup({4, 4, 16}).train_iterations(24, 8), 5);
}

std::string tmp(const std::string& tag) {
  const std::string d = ::testing::TempDir() + "/cs_rampup_" + tag + "_" + std::to_string(getpid());
  fs::remove_all(d);
  return d;
}

std::string dataset() {
  return test::write_dataset(tmp("data"), 30, 40, [](int d, int i) { return (d * 17 + i * (d % 3 + 2)) % 101; });
}

ModelConfig tiny() { return test::tiny16(); }

// Batches 4, 4, 4, 4 (16 samples), then 8: 8 iterations take 48 samples.
TrainArgs args(const std::string& data, int64_t iters, int64_t global, bool ramp) {
  TrainArgs a;
  a.micro_batch = 2;
  a.global_batch = global;
  a.train_iters = iters;
  a.train_samples = 48;  // the same sample order in every run
  a.seq_length = 16;
  a.data_path = {data};
  a.eval_iters = 0;
  a.lr = {3e-3, 3e-4, 8, 48, LrDecay::Cosine};  // in samples
  a.fp16 = true;  // the loss scaler goes on across the batch change too
  a.initial_loss_scale = 256;
  a.loss_scale_window = 3;
  a.log_interval = 1;
  a.print_log = false;
  if (ramp) a.rampup = {4, 4, 16};
  return a;
}

TEST(BatchRampup, ARampedRunIsItsFixedBatchRunsJoinedBitForBit) {
  const std::string data = dataset(), dir = tmp("joined");
  SingleGroup world, tp;
  Model ramped(tiny(), test::cpu_ctx(), tp, 2, 16);
  ramped.params().init(test::cpu_ctx(), 5);
  const TrainResult r = train(ramped, args(data, 8, 8, true), world);
  ASSERT_EQ(r.losses.size(), 8u);
  EXPECT_EQ(r.consumed_samples, 48);
  for (size_t i = 0; i < 8; ++i) EXPECT_EQ(r.records[i].global_batch, i < 4 ? 4 : 8) << "iteration " << i + 1;
  EXPECT_EQ(r.records[3].consumed_samples, 16);

  // Four iterations of 4 samples, saved; resumed with batches of 8 for four more.
  Model first(tiny(), test::cpu_ctx(), tp, 2, 16);
  first.params().init(test::cpu_ctx(), 5);
  TrainArgs a = args(data, 4, 4, false);
  a.save_dir = dir;
  const TrainResult r1 = train(first, a, world);
  Model second(tiny(), test::cpu_ctx(), tp, 2, 16);
  TrainArgs b = args(data, 8, 8, false);
  b.resume_dir = dir;
  const TrainResult r2 = train(second, b, world);
  ASSERT_EQ(r1.losses.size(), 4u);
  ASSERT_EQ(r2.losses.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(r.losses[i], r1.losses[i]) << "iteration " << i + 1;
    EXPECT_EQ(r.losses[4 + i], r2.losses[i]) << "iteration " << i + 5;
  }
  EXPECT_EQ(r.records.back().learning_rate, r2.records.back().learning_rate);
  EXPECT_EQ(r.records.back().loss_scale, r2.records.back().loss_scale);
  const Tensor pr = ramped.params().flat_params(), pj = second.params().flat_params();
  EXPECT_EQ(0, std::memcmp(pr.data, pj.data, pr.nbytes()));
}

TEST(BatchRampup, ARampedRunResumesMidRampupBitForBit) {
  const std::string data = dataset(), dir = tmp("resume"), full_dir = tmp("full");
  SingleGroup world, tp;
  Model full(tiny(), test::cpu_ctx(), tp, 2, 16);
  full.params().init(test::cpu_ctx(), 6);
  TrainArgs af = args(data, 8, 8, true);
  af.save_dir = full_dir;
  const TrainResult rf = train(full, af, world);
  // As Megatron-core does, a checkpoint before the first iteration of the new batch size (and the
  // final one): no --save-interval here.
  std::vector<std::string> saved;
  for (const auto& e : fs::directory_iterator(full_dir))
    if (e.is_directory()) saved.push_back(e.path().filename().string());
  std::sort(saved.begin(), saved.end());
  EXPECT_EQ(saved, (std::vector<std::string>{"iter_0000004", "iter_0000008"}));
  Model first(tiny(), test::cpu_ctx(), tp, 2, 16);
  first.params().init(test::cpu_ctx(), 6);
  TrainArgs a = args(data, 3, 8, true);
  a.save_dir = dir;
  train(first, a, world);
  Model second(tiny(), test::cpu_ctx(), tp, 2, 16);
  TrainArgs b = args(data, 8, 8, true);
  b.resume_dir = dir;
  const TrainResult rc = train(second, b, world);
  ASSERT_EQ(rc.start_iteration, 3);
  ASSERT_EQ(rc.losses.size(), 5u);
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(rc.losses[i], rf.losses[3 + i]) << "iteration " << i + 4;
  EXPECT_EQ(rc.records.front().global_batch, 4);
  EXPECT_EQ(rc.records[1].global_batch, 8);
  const Tensor pf = full.params().flat_params(), pc = second.params().flat_params();
  EXPECT_EQ(0, std::memcmp(pf.data, pc.data, pf.nbytes()));
}

}  // namespace
}  // namespace cs
