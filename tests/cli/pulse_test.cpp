// chuanspeed pulse: each state from fake heartbeats (fresh with a live pid, stale, dead pid,
// finished) and from a real run stopped half-way, and a --restart that resumes the run from its
// last checkpoint and finishes it, without ever starting a second copy.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "cli/run_util.h"
#include "train/heartbeat.h"

namespace cs {
namespace {
namespace fs = std::filesystem;

std::string run_dir(const std::string& tag) {
  const std::string d = ::testing::TempDir() + "/cs_pulse_" + tag + "_" + std::to_string(getpid());
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

Heartbeat beat(int64_t pid, double age, const std::string& state) {
  Heartbeat hb;
  hb.pid = pid;
  hb.time = unix_now() - age;
  hb.host = host_name();
  hb.state = state;
  hb.iteration = 7;
  hb.train_iters = 10;
  return hb;
}

pid_t dead_pid() {
  const pid_t p = fork();
  if (p == 0) _exit(0);
  waitpid(p, nullptr, 0);
  return p;
}

TEST(Pulse, EachStateHasItsLineAndExitStatus) {
  struct Case {
    Heartbeat hb;
    int status;
    const char* word;
  } cases[] = {
      {beat(getpid(), 1, "running"), 0, ": running ("},
      {beat(getpid(), 5000, "running"), 30, ": stalled (no heartbeat for"},
      {beat(dead_pid(), 1, "running"), 40, ": not running (state running, pid"},
      {beat(dead_pid(), 5000, "running"), 30, "process gone"},
      {beat(dead_pid(), 1, "finished"), 20, ": finished (iteration 7/10"},
  };
  for (const Case& c : cases) {
    const std::string dir = run_dir("state");
    write_heartbeat(dir, c.hb);
    auto r = test::run_binary("pulse --run-dir " + dir + " --stale-after 600");
    EXPECT_EQ(r.status, c.status) << r.out;
    EXPECT_NE(r.out.find(c.word), std::string::npos) << r.out;
    EXPECT_EQ(test::count_matching_lines(r.out, dir), 1);
  }
  const std::string empty = run_dir("empty");
  auto r = test::run_binary("pulse --run-dir " + empty);
  EXPECT_EQ(r.status, 40);
  EXPECT_NE(r.out.find("no heartbeat.json"), std::string::npos);
  r = test::run_binary("pulse --run-dir /nonexistent/run");
  EXPECT_EQ(r.status, 1);
}

TEST(Pulse, NeverRestartsALiveProcess) {
  const std::string dir = run_dir("live");
  write_heartbeat(dir, beat(getpid(), 5000, "running"));  // stalled, but this process is alive
  auto r = test::run_binary("pulse --run-dir " + dir + " --restart 'touch " + dir + "/launched'");
  EXPECT_EQ(r.status, 30) << r.out;
  EXPECT_NE(r.out.find("not restarting: pid"), std::string::npos) << r.out;
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(fs::exists(dir + "/launched"));
}

TEST(Pulse, RestartResumesFromTheLastCheckpointAndFinishes) {
  const std::string dir = run_dir("restart"), data = dir + "/data";
  ASSERT_EQ(0, test::run_binary("synth-data --output-prefix " + data + " --vocab-size 101 --num-docs 20").status);
  const std::string train = std::string(CS_BINARY) +
                            " train --model tiny --vocab-size 101 --make-vocab-size-divisible-by 1 "
                            "--seq-length 16 --train-iters 40 --log-interval 10 --lr 1e-3 --save-interval 10 "
                            "--data-path " + data + " --save " + dir;
  ASSERT_EQ(0, std::system((train + " --exit-interval 20 > /dev/null 2>&1").c_str()));
  auto r = test::run_binary("pulse --run-dir " + dir + " --restart '" + train + "'");
  ASSERT_EQ(r.status, 50) << r.out << r.err;
  EXPECT_NE(r.out.find("restarted from the latest checkpoint"), std::string::npos) << r.out;
  r = test::run_binary("pulse --run-dir " + dir + " --restart '" + train + "'");  // still starting
  EXPECT_TRUE(r.status == 0 || r.status == 20) << r.out;
  for (int i = 0; i < 600; ++i) {
    r = test::run_binary("pulse --run-dir " + dir);
    if (r.status == 20) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(r.status, 20) << r.out;
  EXPECT_NE(r.out.find("iteration 40/40"), std::string::npos) << r.out;
  int logs = 0;
  for (const auto& e : fs::directory_iterator(dir)) logs += e.path().filename().string().rfind("restart-", 0) == 0;
  EXPECT_EQ(logs, 1) << "exactly one relaunch";
}

}  // namespace
}  // namespace cs
