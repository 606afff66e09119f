// A resumed run and its checkpoint's learning-rate schedule, as Megatron's OptimizerParamScheduler:
// the checkpoint keeps the settings (lr, min lr, warmup, decay, style, weight decay) beside the
// position; a resume whose command line differs is refused in one line (exit 2) unless
// --override-opt_param-scheduler (this command line's) or --use-checkpoint-opt_param-scheduler (the
// checkpoint's) says which; --no-load-optim starts the schedule again at 0. Each case is read off
// the lr the log line prints after the first resumed iteration.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "cli/run_util.h"
#include "core/error.h"
#include "train/trainer.h"

namespace cs {
namespace {
namespace fs = std::filesystem;

class SchedulerResume : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/cs_sched_" + std::to_string(getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    ASSERT_EQ(0, test::run_binary("synth-data --output-prefix " + dir_ + "/data --vocab-size 101 --num-docs 20").status);
    // Global batch 2; linear decay from 1e-3 to 0 over 8 iterations (16 samples), no warmup.
    flags_ = "train --model tiny --vocab-size 101 --make-vocab-size-divisible-by 1 --seq-length 8 "
             "--micro-batch-size 1 --global-batch-size 2 --log-interval 1 --eval-iters 0 --weight-decay 0.1 "
             "--data-path " + dir_ + "/data";
    ASSERT_EQ(0, test::run_binary(flags_ + " --lr 1e-3 --lr-decay-iters 8 --train-iters 2 --save " + dir_ + "/run")
                     .status);
  }
  void TearDown() override { fs::remove_all(dir_); }
  // Resumes the run to iteration 3 with EXTRA (into a copy, so that every case starts from
  // iteration 2).
  test::RunResult resume(const std::string& extra) {
    const std::string d = dir_ + "/r" + std::to_string(++copies_);
    fs::copy(dir_ + "/run", d, fs::copy_options::recursive);
    return test::run_binary(flags_ + " --train-iters 3 --load " + d + " --save " + d + " " + extra);
  }
  // The lr iteration 3's log line shows (the one after its step: 3 of 8 iterations decayed).
  static double logged_lr(const std::string& out) {
    std::smatch m;
    const std::regex line(R"(iteration\s+3/\s*3 .*learning rate: ([0-9.E+-]+) \|)");
    if (!std::regex_search(out, m, line)) return -1;
    return std::stod(m[1]);
  }
  // The bytes of RUN's iteration-3 weights.
  static std::string weights(const std::string& run) {
    std::ifstream f(run + "/iter_0000003/model-tp00-pp000.safetensors", std::ios::binary);
    return {std::istreambuf_iterator<char>(f), {}};
  }
  std::string dir_, flags_;
  int copies_ = 0;
};

TEST_F(SchedulerResume, CheckpointKeepsTheSettingsUnderMegatronsNames) {
  const auto j = nlohmann::json::parse(std::ifstream(dir_ + "/run/iter_0000002/meta.json")).at("scheduler");
  EXPECT_EQ(j.at("max_lr").get<double>(), 1e-3);
  EXPECT_EQ(j.at("min_lr").get<double>(), 0.0);
  EXPECT_EQ(j.at("lr_warmup_steps").get<double>(), 0.0);
  EXPECT_EQ(j.at("lr_decay_steps").get<int64_t>(), 16);  // samples
  EXPECT_EQ(j.at("lr_decay_style").get<std::string>(), "linear");
  EXPECT_EQ(j.at("start_wd").get<double>(), 0.1);
  EXPECT_EQ(j.at("end_wd").get<double>(), 0.1);
  EXPECT_EQ(j.at("num_samples").get<int64_t>(), 4);
}

TEST_F(SchedulerResume, SameSettingsContinueWithAnotherTrainIters) {
  // --train-iters is not a schedule setting here (the decay is given): 3 of 8 iterations decayed.
  const auto r = resume("--lr 1e-3 --lr-decay-iters 8");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_DOUBLE_EQ(logged_lr(r.out), 1e-3 * (1 - 3.0 / 8)) << r.out;
}

TEST_F(SchedulerResume, DifferentSettingsAreRefusedInOneLine) {
  const auto r = resume("--lr 2e-3 --lr-decay-iters 8 --lr-decay-style cosine --weight-decay 0.2");
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_EQ(test::count_matching_lines(r.err, "error:"), 1) << r.err;
  for (const char* words : {"differs from the checkpoint's: --lr 0.002 (the checkpoint's 0.001)",
                            "--lr-decay-style cosine (the checkpoint's linear)", "--weight-decay 0.2 (the checkpoint's 0.1)",
                            "Hint: pass the checkpoint's values, or add --override-opt_param-scheduler"})
    EXPECT_NE(r.err.find(words), std::string::npos) << words << "\n" << r.err;
  // The decay defaults to --train-iters: a longer run is another decay, refused as in Megatron.
  const auto longer = resume("--lr 1e-3");
  EXPECT_EQ(longer.status, 2) << longer.err;
  EXPECT_NE(longer.err.find("decay samples 6 (the checkpoint's 16)"), std::string::npos) << longer.err;
}

TEST_F(SchedulerResume, OverrideTrainsWithTheCommandLinesSettings) {
  const auto r = resume("--lr 2e-3 --lr-decay-iters 8 --override-opt_param-scheduler");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("--override-opt_param-scheduler: the schedule continues with this command line's settings: "
                       "--lr 0.002 (the checkpoint's 0.001)"), std::string::npos) << r.err;
  EXPECT_DOUBLE_EQ(logged_lr(r.out), 2e-3 * (1 - 3.0 / 8)) << r.out;
}

TEST_F(SchedulerResume, UseCheckpointTrainsWithTheCheckpointsSettings) {
  const auto r = resume("--lr 2e-3 --lr-decay-iters 20 --weight-decay 0.2 --use-checkpoint-opt_param-scheduler");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_DOUBLE_EQ(logged_lr(r.out), 1e-3 * (1 - 3.0 / 8)) << r.out;
  // And its checkpoint keeps them, for the next resume.
  const auto j = nlohmann::json::parse(std::ifstream(dir_ + "/r1/iter_0000003/meta.json")).at("scheduler");
  EXPECT_EQ(j.at("max_lr").get<double>(), 1e-3);
  EXPECT_EQ(j.at("lr_decay_steps").get<int64_t>(), 16);
  EXPECT_EQ(j.at("start_wd").get<double>(), 0.1);
  // The weight decay trained with is the checkpoint's too: iteration 3's step gives the weights of
  // a resume that says 0.1, not those of one that trains with 0.2.
  const auto same = resume("--lr 1e-3 --lr-decay-iters 8");
  ASSERT_EQ(same.status, 0) << same.err;
  EXPECT_FALSE(weights(dir_ + "/r1").empty());
  EXPECT_EQ(weights(dir_ + "/r1"), weights(dir_ + "/r2"));
  const auto other = resume("--lr 1e-3 --lr-decay-iters 8 --weight-decay 0.2 --override-opt_param-scheduler");
  ASSERT_EQ(other.status, 0) << other.err;
  EXPECT_NE(weights(dir_ + "/r2"), weights(dir_ + "/r3"));
  const auto both = resume("--lr 1e-3 --override-opt_param-scheduler --use-checkpoint-opt_param-scheduler");
  EXPECT_EQ(both.status, 2);
  EXPECT_NE(both.err.find("pick one"), std::string::npos) << both.err;
}

TEST_F(SchedulerResume, NoLoadOptimStartsTheScheduleAgainAsMegatrons) {
  // Megatron's --no-load-optim leaves the scheduler with the optimizer: iteration 3 is its first
  // step (1 of 8 iterations decayed), from this command line's settings, unchecked.
  const auto r = resume("--lr 2e-3 --lr-decay-iters 8 --no-load-optim");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_DOUBLE_EQ(logged_lr(r.out), 2e-3 * (1 - 1.0 / 8)) << r.out;
  // And the loss scaler (part of Megatron's optimizer state): a scale of 1e300 overflows every
  // step (hysteresis 1: each halves it), so the saved run is at 1e300 / 4 and a resume continues
  // from it, while --no-load-optim starts at --initial-loss-scale again.
  const std::string fp16 = " --fp16 --initial-loss-scale 1e300 --hysteresis 1 --lr 1e-3 --lr-decay-iters 8 ";
  ASSERT_EQ(0, test::run_binary(flags_ + fp16 + "--train-iters 2 --save " + dir_ + "/h").status);
  auto scale_after = [&](const std::string& extra) {
    fs::remove_all(dir_ + "/h2");
    fs::copy(dir_ + "/h", dir_ + "/h2", fs::copy_options::recursive);
    const auto run = test::run_binary(flags_ + fp16 + "--train-iters 3 --load " + dir_ + "/h2 --save " + dir_ +
                                      "/h2 " + extra);
    EXPECT_EQ(run.status, 0) << run.err;
    return nlohmann::json::parse(std::ifstream(dir_ + "/h2/iter_0000003/meta.json")).at("loss_scaler").at("scale")
        .get<double>();
  };
  EXPECT_EQ(nlohmann::json::parse(std::ifstream(dir_ + "/h/iter_0000002/meta.json")).at("loss_scaler").at("scale")
                .get<double>(), 1e300 / 4);
  EXPECT_EQ(scale_after(""), 1e300 / 8);
  EXPECT_EQ(scale_after("--no-load-optim"), 1e300 / 2);
}

}  // namespace
}  // namespace cs

namespace cs {
namespace {

// Megatron keeps no WSD anneal in its checkpoint: a resume that takes the checkpoint's WSD schedule
// uses the command line's anneal, and without one it is refused (Megatron would fail on None).
TEST(SettleScheduler, AWsdCheckpointTakesTheCommandLinesAnneal) {
  SchedulerSettings stored{{1e-3, 1e-4, 10, 1000, LrDecay::WSD}, 0.1};
  stored.lr.wsd_decay_steps = 0;  // as read back: not kept
  SchedulerSettings here{{1e-3, 1e-4, 10, 1000, LrDecay::Cosine}, 0.1};
  here.lr.wsd_decay_steps = 200;
  here.lr.wsd_style = WsdDecay::Linear;
  const SchedulerSettings got = settle_scheduler(here, stored, SchedulerOnResume::UseCheckpoint, "ckpt", false);
  EXPECT_EQ(got.lr.style, LrDecay::WSD);
  EXPECT_EQ(got.lr.wsd_decay_steps, 200);
  EXPECT_EQ(got.lr.wsd_style, WsdDecay::Linear);
  here.lr.wsd_decay_steps = 0;
  try {
    settle_scheduler(here, stored, SchedulerOnResume::UseCheckpoint, "ckpt", false);
    FAIL() << "a WSD schedule without its anneal";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("whose anneal length a checkpoint does not keep"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace cs
