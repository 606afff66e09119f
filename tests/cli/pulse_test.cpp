// chuanspeed pulse: each state from fake heartbeats (fresh with a live pid, stale, dead pid,
// finished, failed with a NaN loss, a reused pid, another host, a pending Slurm job through a fake
// squeue) and from a real run stopped half-way; a --restart of a seed-script-shaped command that
// resumes the run from its last checkpoint with its whole state (losses equal an uninterrupted
// run's), a relaunch that dies, quoting, and the lock (never inherited, bounded wait).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
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

// "iteration N ... lm loss: X" of a training log, per iteration.
std::map<int64_t, std::string> losses(const std::string& path) {
  std::ifstream f(path);
  std::map<int64_t, std::string> out;
  for (std::string line; std::getline(f, line);) {
    const size_t it = line.find(" iteration "), loss = line.find("lm loss: ");
    if (line.rfind(" iteration", 0) != 0 || it == std::string::npos || loss == std::string::npos) continue;
    out[std::stoll(line.substr(it + 11))] = line.substr(loss, line.find('|', loss) - loss);
  }
  return out;
}

// The seed scripts' shape: the command loads the starting weights (--load INIT --finetune
// --no-load-optim --no-load-rng). The restart appends --load RUN_DIR --resume, which must win:
// the relaunched run resumes at iteration 20 with its whole state, and its losses equal an
// uninterrupted run's.
TEST(Pulse, RestartResumesFromTheLastCheckpointAndFinishes) {
  const std::string dir = run_dir("restart"), data = dir + "_data", init = dir + "_init", straight = dir + "_straight";
  fs::remove_all(straight);
  ASSERT_EQ(0, test::run_binary("synth-data --output-prefix " + data + " --vocab-size 101 --num-docs 20").status);
  ASSERT_EQ(0, test::run_binary("init --model tiny --vocab-size 101 --make-vocab-size-divisible-by 1 --save " + init).status);
  const std::string train = std::string(CS_BINARY) +
                            " train --model tiny --vocab-size 101 --make-vocab-size-divisible-by 1 "
                            "--seq-length 16 --train-iters 40 --log-interval 10 --lr 1e-3 --save-interval 10 "
                            "--load " + init + " --finetune --no-load-optim --no-load-rng --data-path " + data;
  ASSERT_EQ(0, std::system((train + " --save " + straight + " > " + straight + ".log 2>&1").c_str()));
  ASSERT_EQ(0, std::system((train + " --save " + dir + " --exit-interval 20 > /dev/null 2>&1").c_str()));
  const std::string restart = train + " --save " + dir;
  auto r = test::run_binary("pulse --run-dir " + dir + " --restart '" + restart + "'");
  ASSERT_EQ(r.status, 50) << r.out << r.err;
  EXPECT_NE(r.out.find("restarted from the latest checkpoint (iteration 20)"), std::string::npos) << r.out;
  r = test::run_binary("pulse --run-dir " + dir + " --restart '" + restart + "'");  // starting or done
  EXPECT_TRUE(r.status == 0 || r.status == 20) << r.out;
  for (int i = 0; i < 600; ++i) {
    r = test::run_binary("pulse --run-dir " + dir);
    if (r.status == 20) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(r.status, 20) << r.out;
  EXPECT_NE(r.out.find("iteration 40/40"), std::string::npos) << r.out;
  std::string log;
  int logs = 0;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind("restart-", 0) == 0) ++logs, log = e.path().string();
  ASSERT_EQ(logs, 1) << "exactly one relaunch";
  const auto a = losses(straight + ".log"), b = losses(log);
  ASSERT_EQ(a.size(), 4u);
  ASSERT_EQ(b.size(), 2u) << "the relaunch did not resume at iteration 20";
  EXPECT_EQ(b.at(30), a.at(30));
  EXPECT_EQ(b.at(40), a.at(40));
}

// A run saved with --no-save-optim cannot be continued by --resume: pulse says so and relaunches
// nothing (a relaunch would only fail at the same line, again at every pulse).
TEST(Pulse, ARunSavedWithoutItsOptimizerIsNotRestarted) {
  const std::string dir = run_dir("no_optim"), data = dir + "_data";
  ASSERT_EQ(0, test::run_binary("synth-data --output-prefix " + data + " --vocab-size 101 --num-docs 20").status);
  const std::string train = std::string(CS_BINARY) +
                            " train --model tiny --vocab-size 101 --seq-length 16 --train-iters 4 --lr 1e-3 "
                            "--eval-iters 0 --no-save-optim --data-path " + data + " --save " + dir;
  ASSERT_EQ(0, std::system((train + " --exit-interval 2 > /dev/null 2>&1").c_str()));
  const auto r = test::run_binary("pulse --run-dir " + dir + " --restart 'touch " + dir + "/launched'");
  EXPECT_EQ(r.status, 40) << r.out << r.err;
  EXPECT_NE(r.out.find("not restarting: the latest checkpoint (iteration 2) was saved with --no-save-optim"),
            std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(dir + "/launched"));
}

// A run stopped by --exit-on-nan leaves "last_loss": null: pulse still reads it.
TEST(Pulse, NonFiniteLastLossIsReadable) {
  const std::string dir = run_dir("nan");
  Heartbeat hb = beat(dead_pid(), 1, "failed");
  hb.last_loss = std::nan("");
  write_heartbeat(dir, hb);
  EXPECT_TRUE(std::isnan(read_heartbeat(dir)->last_loss));
  const auto r = test::run_binary("pulse --run-dir " + dir);
  EXPECT_EQ(r.status, 40) << r.out << r.err;
  EXPECT_NE(r.out.find("state failed"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("last loss nan"), std::string::npos) << r.out;
}

// A heartbeat whose pid now belongs to another process (its start time differs) is not the run.
TEST(Pulse, ReusedPidIsNotTheRun) {
  const std::string dir = run_dir("reused");
  Heartbeat hb = beat(getpid(), 5000, "running");  // stale; this pid is alive but started later
  hb.pid_start = process_start_ticks(getpid()) + 1;
  write_heartbeat(dir, hb);
  const auto r = test::run_binary("pulse --run-dir " + dir + " --restart 'touch " + dir + "/launched'");
  EXPECT_EQ(r.status, 50) << r.out << r.err;
  EXPECT_NE(r.out.find("process gone"), std::string::npos) << r.out;
  for (int i = 0; i < 100 && !fs::exists(dir + "/launched"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_TRUE(fs::exists(dir + "/launched"));
  EXPECT_TRUE(process_alive(getpid(), process_start_ticks(getpid())));
}

// A run whose heartbeat comes from another host cannot be checked from here: never relaunched.
TEST(Pulse, RunOnAnotherHostIsNotRestarted) {
  const std::string dir = run_dir("host");
  Heartbeat hb = beat(getpid(), 5000, "running");
  hb.host = "another-node-17";
  write_heartbeat(dir, hb);
  const auto r = test::run_binary("pulse --run-dir " + dir + " --restart 'touch " + dir + "/launched'");
  EXPECT_EQ(r.status, 30) << r.out;
  EXPECT_NE(r.out.find("process on another-node-17, not checked from here"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("not restarting: the run's process is on another-node-17"), std::string::npos) << r.out;
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(fs::exists(dir + "/launched"));
}

// A relaunch that dies before its first heartbeat is seen as not running by the next pulse (it
// was reported as "running, starting" until --stale-after); quotes in the command survive.
TEST(Pulse, RelaunchThatDiesIsNotRunning) {
  const std::string dir = run_dir("dies");
  auto r = test::run_binary("pulse --run-dir " + dir + " --restart \"printf '%s|' 'two words' > " + dir +
                            "/out.txt; exit 3\"");
  ASSERT_EQ(r.status, 50) << r.out << r.err;
  EXPECT_NE(r.out.find("restarted (no checkpoint yet)"), std::string::npos) << r.out;
  for (int i = 0; i < 100; ++i) {
    r = test::run_binary("pulse --run-dir " + dir);
    if (r.status != 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(r.status, 40) << r.out;
  EXPECT_NE(r.out.find("exited before its first heartbeat; see " + dir + "/restart-"), std::string::npos) << r.out;
  std::ifstream f(dir + "/out.txt");
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(f)), {}), "two words|");
}

// The relaunched command does not inherit the lock (a later pulse is not blocked by it), and a
// pulse that cannot get the lock gives up after --lock-wait with one line.
TEST(Pulse, LockIsNotInheritedAndWaitingIsBounded) {
  const std::string dir = run_dir("lock");
  auto r = test::run_binary("pulse --run-dir " + dir + " --restart 'sleep 5'");
  ASSERT_EQ(r.status, 50) << r.out << r.err;
  r = test::run_binary("pulse --run-dir " + dir + " --lock-wait 1");
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("relaunched by a pulse"), std::string::npos) << r.out;
  const auto hb = read_heartbeat(dir);
  ASSERT_TRUE(hb && hb->pid > 0);
  kill(-pid_t(hb->pid), SIGKILL);  // its own session and process group
  const int fd = ::open((dir + "/pulse.lock").c_str(), O_RDWR);
  ASSERT_EQ(flock(fd, LOCK_EX | LOCK_NB), 0);
  r = test::run_binary("pulse --run-dir " + dir + " --lock-wait 0.3");
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_EQ(test::count_matching_lines(r.err, "another pulse has held the lock"), 1) << r.err;
  ::close(fd);
}

// A pending Slurm job of the run's name (a fake squeue on PATH): scheduled. A run directory given
// with a trailing slash still names the job.
TEST(Pulse, PendingSlurmJobIsScheduled) {
  const std::string dir = run_dir("sched"), bin = dir + "_bin";
  fs::create_directories(bin);
  {
    std::ofstream f(bin + "/squeue");
    f << "#!/bin/sh\necho \"$@\" > " << bin << "/args\necho '4242 PENDING'\n";
  }
  fs::permissions(bin + "/squeue", fs::perms::owner_all);
  const std::string cmd = "PATH=" + bin + ":$PATH " + std::string(CS_BINARY) + " pulse --run-dir " + dir + "/";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof buf, p)) out += buf;
  const int st = pclose(p);
  EXPECT_EQ(WEXITSTATUS(st), 10) << out;
  const std::string name = fs::path(dir).filename().string();
  EXPECT_NE(out.find("scheduled (Slurm job '" + name + "' is pending)"), std::string::npos) << out;
  std::ifstream a(bin + "/args");
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(a)), {}), "-h -t PENDING -n " + name + "\n");
}

}  // namespace
}  // namespace cs
