// chuanspeed plan's CPU prediction against the measured peak RSS of real `chuanspeed train` runs
// (three configs: parameters, logits and recomputation dominating in turn), within 15 %. Labelled
// no_sanitize (tests/CMakeLists.txt): under AddressSanitizer the process's resident set holds the
// sanitizer's shadow memory and quarantine too, which this measurement is not about.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli/run_util.h"

extern char** environ;

namespace cs {
namespace {
namespace fs = std::filesystem;

std::vector<std::string> split_args(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> v;
  for (std::string w; in >> w;) v.push_back(w);
  return v;
}

// Runs the binary directly (no shell) with OMP_NUM_THREADS=threads; returns the child's peak RSS
// in bytes (wait4's ru_maxrss) or -1 when it failed. posix_spawn, not fork: no OpenMP state is
// duplicated.
double peak_rss_of(const std::string& args, int threads) {
  std::vector<std::string> a = split_args(args);
  a.insert(a.begin(), CS_BINARY);
  std::vector<char*> argv;
  for (std::string& s : a) argv.push_back(s.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s;
  for (char** e = environ; *e; ++e)
    if (std::string(*e).rfind("OMP_NUM_THREADS=", 0) != 0) env_s.push_back(*e);
  env_s.push_back("OMP_NUM_THREADS=" + std::to_string(threads));
  std::vector<char*> envp;
  for (std::string& s : env_s) envp.push_back(s.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, CS_BINARY, &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return -1;
  int status = 0;
  struct rusage ru {};
  if (wait4(pid, &status, 0, &ru) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return -1;
  return double(ru.ru_maxrss) * 1024.0;
}

nlohmann::json plan_json(const std::string& args) {
  const test::RunResult r = test::run_binary("plan " + args + " --json");
  EXPECT_EQ(r.status, 0) << r.err;
  return nlohmann::json::parse(r.out);
}

class PlanVsRss : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = ::testing::TempDir() + "/cs_plan_" + std::to_string(getpid());
    fs::create_directories(dir_);
    for (const char* v : {"32000", "1000"})
      ASSERT_EQ(0, test::run_binary(std::string("synth-data --output-prefix ") + dir_ + "/d" + v +
                                    " --vocab-size " + v + " --num-docs 200").status);
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  // Plans `model` (train's flags) for the CPU with 2 threads, runs it for one iteration with 2
  // threads, and checks the plan's peak against the measured peak RSS. Returns the measured bytes.
  static double check(const std::string& model, const std::string& data) {
    const nlohmann::json p = plan_json(model + " --backend cpu --cpu-threads 2");
    const double predicted = p["peak_bytes"].get<double>();
    const double measured = peak_rss_of("train " + model + " --train-iters 1 --lr 1e-4 --eval-iters 0 "
                                        "--log-interval 1 --data-path " + dir_ + "/" + data, 2);
    EXPECT_GT(measured, 0) << "chuanspeed train " << model << " failed";
    std::printf("[plan] %s: predicted %.1f MiB, measured peak RSS %.1f MiB (%+.2f %%)\n", model.c_str(),
                predicted / 1048576, measured / 1048576, 100 * (predicted - measured) / measured);
    EXPECT_GT(measured, 200e6) << "the config should dwarf the process baseline";
    EXPECT_NEAR(predicted / measured, 1.0, 0.15);
    return measured;
  }
  static std::string dir_;
};
std::string PlanVsRss::dir_;

TEST_F(PlanVsRss, ParametersDominate) {
  check("--model small --vocab-size 32000 --num-layers 4 --hidden-size 256 --ffn-hidden-size 688 "
        "--num-attention-heads 4 --seq-length 256 --micro-batch-size 1", "d32000");
}

TEST_F(PlanVsRss, LogitsAndActivationsDominate) {
  check("--model small --vocab-size 32000 --num-layers 4 --hidden-size 128 --ffn-hidden-size 352 "
        "--num-attention-heads 4 --seq-length 768 --micro-batch-size 2", "d32000");
}

// --bf16: bf16 parameters beside fp32 master weights, gradients and moments; the GEMMs' saved
// activations and the logits' gradient in bf16.
TEST_F(PlanVsRss, Bf16) {
  check("--model small --vocab-size 32000 --num-layers 4 --hidden-size 256 --ffn-hidden-size 688 "
        "--num-attention-heads 4 --seq-length 512 --micro-batch-size 2 --bf16", "d32000");
}

TEST_F(PlanVsRss, RecomputationKeepsOnlyLayerInputs) {
  const std::string m = "--model small --vocab-size 1000 --num-layers 12 --hidden-size 256 "
                        "--ffn-hidden-size 688 --num-attention-heads 4 --seq-length 256 --micro-batch-size 4";
  const double measured = check(m + " --recompute-granularity full", "d1000");
  // The same layout planned without recomputation is far off: the test sees the difference.
  const double without = plan_json(m + " --backend cpu --cpu-threads 2")["peak_bytes"].get<double>();
  EXPECT_GT(without / measured, 1.5);
}

}  // namespace
}  // namespace cs
