// Resume is bit-identical: train N then resume to N + M equals an uninterrupted N + M run (losses,
// weights, optimizer state), in the library and through the binary, including a run killed with
// SIGKILL between two saves (held there by a test hook; resume from the last complete checkpoint),
// a run killed while writing a checkpoint (the partial one ignored with a message) and a run
// stopped with SIGTERM (finishes the step, saves, exits 0).
#include <fmt/core.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>
#include <tuple>
#include <vector>

#include "backend/backend.h"
#include "checkpoint/native.h"
#include "cli/run_util.h"
#include "data/indexed_dataset.h"
#include "train/trainer.h"
#include "device_env.h"
#include "train/train_fixture.h"

namespace cs {
namespace {
namespace fs = std::filesystem;

std::string tmp(const std::string& tag) {
  const std::string d = ::testing::TempDir() + "/cs_resume_" + tag + "_" + std::to_string(getpid());
  fs::remove_all(d);
  return d;
}

std::string dataset() {
  return test::write_dataset(tmp("data"), 30, 40, [](int d, int i) { return (d * 13 + i * (d % 5 + 1)) % 101; });
}

TrainArgs args(const std::string& data, int64_t iters) {
  TrainArgs a;
  a.micro_batch = 2;
  a.global_batch = 4;
  a.train_iters = iters;
  a.seq_length = 16;
  a.data_path = {data};
  a.lr = {3e-3, 3e-4, 2 * 4, 12 * 4, LrDecay::Cosine};  // samples; the schedule spans the whole run in both cases
  a.fp16 = true;                                // the loss scaler's state must survive too
  a.initial_loss_scale = 256;
  a.loss_scale_window = 3;
  a.log_interval = 1;
  a.print_log = false;
  return a;
}

ModelConfig tiny() { return test::tiny16(); }

TEST(Resume, TrainThenResumeEqualsAnUninterruptedRunBitForBit) {
  const std::string data = dataset(), full_dir = tmp("full"), part_dir = tmp("part");
  SingleGroup world, tp;
  Model full(tiny(), test::cpu_ctx(), tp, 2, 16);
  full.params().init(test::cpu_ctx(), 9);
  TrainArgs a = args(data, 12);
  a.save_dir = full_dir;
  TrainResult rf = train(full, a, world);

  Model first(tiny(), test::cpu_ctx(), tp, 2, 16);
  first.params().init(test::cpu_ctx(), 9);
  TrainArgs b = args(data, 7);
  b.save_dir = part_dir;
  train(first, b, world);
  Model second(tiny(), test::cpu_ctx(), tp, 2, 16);  // a fresh process: nothing carried over in memory
  TrainArgs c = args(data, 12);
  c.save_dir = part_dir;
  c.resume_dir = part_dir;
  TrainResult rc = train(second, c, world);

  ASSERT_EQ(rc.start_iteration, 7);
  ASSERT_EQ(rc.losses.size(), 5u);
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(rc.losses[i], rf.losses[7 + i]) << "iteration " << 8 + i;
  EXPECT_EQ(rc.consumed_samples, rf.consumed_samples);
  const Tensor pf = full.params().flat_params(), pc = second.params().flat_params();
  EXPECT_EQ(0, std::memcmp(pf.data, pc.data, pf.nbytes()));
  EXPECT_EQ(rc.records.back().loss_scale, rf.records.back().loss_scale);
}

TEST(Resume, FinetuneLoadsWeightsOnlyAndStartsAtZero) {
  const std::string data = dataset(), dir = tmp("ft");
  SingleGroup world, tp;
  Model m(tiny(), test::cpu_ctx(), tp, 2, 16);
  m.params().init(test::cpu_ctx(), 3);
  TrainArgs a = args(data, 4);
  a.save_dir = dir;
  train(m, a, world);
  Model n(tiny(), test::cpu_ctx(), tp, 2, 16);
  TrainArgs b = args(data, 2);
  b.resume_dir = dir;
  b.finetune = true;
  TrainResult r = train(n, b, world);
  EXPECT_EQ(r.start_iteration, 0);
  EXPECT_EQ(r.losses.size(), 2u);
}

// Through the binary: the lines of iterations after the resume point equal the uninterrupted run's.
std::vector<std::string> log_lines(const std::string& path) {
  std::ifstream f(path);
  std::vector<std::string> out;
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(" iteration", 0) == 0) out.push_back(line.substr(0, line.find("| elapsed")) +
                                                        line.substr(line.find("| learning rate"), line.find("| samples/s") - line.find("| learning rate")));
  return out;
}

bool wait_for(const std::string& path, double seconds) {
  for (int i = 0; i < int(seconds * 100); ++i) {
    if (fs::exists(path)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

class ResumeBinary : public ::testing::Test {
 protected:
  void SetUp() override {
    data_ = tmp("bin_data");
    ASSERT_EQ(0, test::run_binary("synth-data --output-prefix " + data_ + " --vocab-size 101 --num-docs 40").status);
    flags_ = "train --model tiny --vocab-size 101 --make-vocab-size-divisible-by 1 --seq-length 16 "
             "--micro-batch-size 2 --global-batch-size 4 --lr 1e-3 --lr-warmup-iters 5 "
             "--lr-decay-style cosine --log-interval 1 --train-iters 300 --data-path " + data_;
  }
  // Starts the binary in the background (with ENV, "NAME=VALUE ..." or empty); returns its pid.
  pid_t start(const std::string& extra, const std::string& log, const std::string& env = "") {
    // A shell in the background waits for the binary and records its exit status in LOG.rc.
    const std::string pidf = log + ".pid";
    fs::remove(log + ".rc");
    const std::string cmd = "sh -c '" + env + " " + std::string(CS_BINARY) + " " + flags_ + " " + extra + " > " +
                            log + " 2>&1 & p=$!; echo $p > " + pidf + "; wait $p; echo $? > " + log +
                            ".rc' &";
    EXPECT_EQ(0, std::system(cmd.c_str()));
    EXPECT_TRUE(wait_for(pidf, 10));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::ifstream f(pidf);
    pid_t pid = 0;
    f >> pid;
    return pid;
  }
  // Waits for the binary to end; returns its exit status as the shell saw it (137 after SIGKILL).
  static int wait_exit(const std::string& log) {
    if (!wait_for(log + ".rc", 60)) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::ifstream f(log + ".rc");
    int rc = -1;
    f >> rc;
    return rc;
  }
  std::string data_, flags_;
};

// The kill lands between two saves by construction, not by racing a run of 300 iterations that
// takes a fraction of a second: the test hook CS_TEST_HOLD_AFTER_SAVE holds the run once the
// checkpoint of iteration 40 is complete (its latest file written) and says so in a file.
TEST_F(ResumeBinary, KilledBetweenSavesResumesFromTheLastCompleteCheckpoint) {
  const std::string straight = tmp("straight"), killed = tmp("killed"), held = killed + ".held";
  ASSERT_EQ(0, test::run_binary(flags_ + " --save " + straight + " > " + straight + ".log").status);
  pid_t pid = start("--save " + killed + " --save-interval 20", killed + ".log",
                    "CS_TEST_HOLD_AFTER_SAVE=40:" + held);
  ASSERT_TRUE(wait_for(held, 60)) << "the run never reached the checkpoint of iteration 40";
  kill(pid, SIGKILL);
  EXPECT_EQ(wait_exit(killed + ".log"), 128 + SIGKILL);
  const int64_t last = latest_iteration(killed);
  ASSERT_EQ(last, 40);
  auto r = test::run_binary(flags_ + " --save " + killed + " --load " + killed + " > " + killed + ".resumed.log");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto a = log_lines(straight + ".log"), b = log_lines(killed + ".resumed.log");
  ASSERT_EQ(a.size(), 300u);
  ASSERT_EQ(b.size(), size_t(300 - last));
  for (size_t i = 0; i < b.size(); ++i) ASSERT_EQ(b[i], a[size_t(last) + i]);
  std::ifstream fa(straight + "/iter_0000300/model-tp00-pp000.safetensors", std::ios::binary),
      fb(killed + "/iter_0000300/model-tp00-pp000.safetensors", std::ios::binary);
  const std::string wa((std::istreambuf_iterator<char>(fa)), {}), wb((std::istreambuf_iterator<char>(fb)), {});
  EXPECT_TRUE(!wa.empty() && wa == wb) << "final weights differ";
}

// SIGKILL while a checkpoint is being written (its iter_XXXXXXX.tmp folder on disk, caught by
// watching the folder): the resumed run says it ignores the partial one, resumes from the previous
// complete checkpoint, writes the same iteration again over the partial folder, and its losses and
// final weights equal an uninterrupted run's.
TEST_F(ResumeBinary, KilledWhileWritingACheckpointResumesFromThePreviousOne) {
  const std::string straight = tmp("straight_mid");
  ASSERT_EQ(0, test::run_binary(flags_ + " --save " + straight + " > " + straight + ".log").status);
  std::string dir, partial;
  for (int attempt = 0; attempt < 5 && partial.empty(); ++attempt) {
    dir = tmp("midwrite" + std::to_string(attempt));
    const pid_t pid = start("--save " + dir + " --save-interval 5", dir + ".log");
    ASSERT_TRUE(wait_for(dir + "/iter_0000005/meta.json", 60)) << "no checkpoint appeared";
    std::string seen;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (seen.empty() && std::chrono::steady_clock::now() < until) {
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(dir, ec)) {
        const std::string n = e.path().filename().string();
        if (n.rfind("iter_", 0) == 0 && n.size() > 4 && n.substr(n.size() - 4) == ".tmp") seen = n;
      }
    }
    kill(pid, SIGKILL);
    EXPECT_EQ(wait_exit(dir + ".log"), 128 + SIGKILL);
    if (!seen.empty() && fs::exists(dir + "/" + seen)) partial = seen;  // else it completed first: again
  }
  ASSERT_FALSE(partial.empty()) << "no run was killed while writing a checkpoint in 5 tries";
  const int64_t last = latest_iteration(dir);
  EXPECT_EQ(partial, fmt::format("iter_{:07d}.tmp", last + 5)) << "the latest file moved before the write completed";
  auto r = test::run_binary(flags_ + " --save " + dir + " --load " + dir + " --save-interval 5 > " + dir + ".resumed.log");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(test::count_matching_lines(r.err, "ignoring " + dir + "/" + partial + ": its write never completed"), 1)
      << r.err;
  const auto a = log_lines(straight + ".log"), b = log_lines(dir + ".resumed.log");
  ASSERT_EQ(b.size(), size_t(300 - last));
  for (size_t i = 0; i < b.size(); ++i) ASSERT_EQ(b[i], a[size_t(last) + i]);
  EXPECT_TRUE(fs::exists(dir + "/" + partial.substr(0, partial.size() - 4) + "/meta.json"));
  EXPECT_FALSE(fs::exists(dir + "/" + partial)) << "the partial folder was left after the iteration was saved again";
  std::ifstream fa(straight + "/iter_0000300/model-tp00-pp000.safetensors", std::ios::binary),
      fb(dir + "/iter_0000300/model-tp00-pp000.safetensors", std::ios::binary);
  const std::string wa((std::istreambuf_iterator<char>(fa)), {}), wb((std::istreambuf_iterator<char>(fb)), {});
  EXPECT_TRUE(!wa.empty() && wa == wb) << "final weights differ";
}

// Resuming with another --seed than the checkpoint's changes the sample order: said in one line.
TEST_F(ResumeBinary, AnotherSeedOnResumeIsAWarning) {
  const std::string dir = tmp("seed");
  ASSERT_EQ(0, test::run_binary(flags_ + " --seed 7 --exit-interval 10 --save " + dir + " > /dev/null").status);
  auto r = test::run_binary(flags_ + " --seed 8 --exit-interval 20 --save " + dir + " --load " + dir + " > /dev/null");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(test::count_matching_lines(r.err, "was trained with --seed 7, this run has --seed 8"), 1) << r.err;
  r = test::run_binary(flags_ + " --seed 8 --exit-interval 30 --save " + dir + " --load " + dir + " > /dev/null");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(test::count_matching_lines(r.err, "was trained with --seed"), 0) << r.err;  // the new seed was saved
}

// Megatron's --exit-duration-in-mins (a Slurm job's time limit): after the first iteration that
// ends past it, save and exit 0, the heartbeat "stopped" (pulse relaunches it); the resumed run
// continues bit-identically. 1e-7 minutes (6 us) is over after iteration 1.
TEST_F(ResumeBinary, ExitDurationSavesExitsZeroAndResumesExactly) {
  const std::string straight = tmp("dur_straight"), dir = tmp("dur");
  ASSERT_EQ(0, test::run_binary(flags_ + " --train-iters 6 --save " + straight + " > " + straight + ".log").status);
  auto r = test::run_binary(flags_ + " --train-iters 6 --exit-duration-in-mins 1e-7 --save " + dir + " > " + dir +
                            ".log");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("--exit-duration-in-mins 1e-07: saved at iteration 1 after"), std::string::npos) << r.err;
  EXPECT_EQ(latest_iteration(dir), 1);
  EXPECT_FALSE(fs::exists(dir + "/hf"));  // the run is not over
  std::ifstream hb(dir + "/heartbeat.json");
  const std::string beat((std::istreambuf_iterator<char>(hb)), {});
  EXPECT_NE(beat.find("\"stopped\""), std::string::npos) << beat;
  r = test::run_binary(flags_ + " --train-iters 6 --save " + dir + " --load " + dir + " > " + dir + ".resumed.log");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto a = log_lines(straight + ".log"), b = log_lines(dir + ".resumed.log");
  ASSERT_EQ(a.size(), 6u);
  ASSERT_EQ(b.size(), 5u);
  for (size_t i = 0; i < b.size(); ++i) EXPECT_EQ(b[i], a[i + 1]);
}

// SIGTERM, and Megatron's --exit-signal (here SIGUSR1, a scheduler's warning before its limit).
TEST_F(ResumeBinary, SigtermFinishesTheStepSavesAndExitsZero) {
  for (const auto& [name, sig, extra] : std::vector<std::tuple<std::string, int, std::string>>{
           {"term", SIGTERM, ""}, {"usr1", SIGUSR1, " --exit-signal SIGUSR1"}}) {
    const std::string dir = tmp(name);
    pid_t pid = start("--save " + dir + " --save-interval 1000" + extra, dir + ".log");
    ASSERT_TRUE(wait_for(dir + "/metrics.jsonl", 60));
    kill(pid, sig);
    EXPECT_EQ(wait_exit(dir + ".log"), 0) << name;
    std::ifstream f(dir + ".log");
    const std::string log((std::istreambuf_iterator<char>(f)), {});
    EXPECT_NE(log.find("stop requested (signal): saved at iteration"), std::string::npos) << log;
    const int64_t it = latest_iteration(dir);
    EXPECT_GT(it, 0) << name;
    EXPECT_LT(it, 300) << name;
  }
}

}  // namespace
}  // namespace cs
