// The fixture of the tests that train through the real binary under mpirun and compare runs:
// a synthetic dataset, the tiny model's flags (model_flags()), a run of N ranks into a folder,
// and the losses of two runs compared iteration by iteration (DESIGN §4: 1e-5 relative).
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/run_util.h"

namespace cs::test {

// mpirun as root needs these; --oversubscribe runs 4 ranks on 2 cores.
inline const std::string kMpirun =
    "env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 "
    "OMP_NUM_THREADS=1 mpirun --oversubscribe -np ";

struct Metrics {
  std::map<int64_t, double> train, valid, params_norm, num_zeros;
};

inline Metrics read_metrics(const std::string& path) {
  Metrics m;
  std::ifstream f(path);
  for (std::string line; std::getline(f, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("lm_loss")) m.train[j["iteration"].get<int64_t>()] = j["lm_loss"].get<double>();
    if (j.contains("params_norm")) m.params_norm[j["iteration"].get<int64_t>()] = j["params_norm"].get<double>();
    if (j.contains("num_zeros")) m.num_zeros[j["iteration"].get<int64_t>()] = j["num_zeros"].get<double>();
    if (j.contains("valid_lm_loss")) m.valid[j["iteration"].get<int64_t>()] = j["valid_lm_loss"].get<double>();
  }
  return m;
}

inline int run_shell(const std::string& cmd) {
  const int st = std::system(cmd.c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

class ParallelRuns : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (run_shell("mpirun --version > /dev/null 2>&1") != 0) GTEST_SKIP() << "mpirun not installed";
    dir_ = ::testing::TempDir() + "/cs_par_" + GetParam() + "_" + std::to_string(getpid());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    ASSERT_EQ(0, test::run_binary("synth-data --output-prefix " + dir_ + "/data --vocab-size 101 --num-docs 60").status);
    flags_ = "train --model tiny " + model_flags() + " --position-embedding-type " + GetParam() + " --seq-length 16 --micro-batch-size 2 --global-batch-size 8 --lr 3e-3 "
             "--lr-warmup-iters 2 --lr-decay-style cosine --log-interval 1 --eval-interval 5 --eval-iters 1 "
             "--log-params-norm --log-num-zeros-in-grad "
             "--data-path " + dir_ + "/data";
  }
  void TearDown() override { if (!getenv("CS_KEEP")) std::filesystem::remove_all(dir_); }
  // The model's size flags: by default 4 layers, 4 heads and a vocabulary padded to a multiple of
  // 4, so every tensor- and pipeline-parallel size up to 4 splits the same model.
  virtual std::string model_flags() const {
    return "--num-layers 4 --num-attention-heads 4 --vocab-size 101 --make-vocab-size-divisible-by 4";
  }
  // Runs `ranks` ranks (0: one process without mpirun) training to `iters` into dir_/name.
  int train(int ranks, const std::string& name, int iters, const std::string& extra = "") {
    return train_with(ranks, name, "--train-iters " + std::to_string(iters) + " " + extra);
  }
  // The same with the run's length among `flags` (e.g. --train-samples).
  int train_with(int ranks, const std::string& name, const std::string& flags) {
    const std::string cmd = (ranks ? kMpirun + std::to_string(ranks) + " " : std::string("OMP_NUM_THREADS=1 ")) +
                            CS_BINARY + " " + flags_ + " --save " + dir_ + "/" + name + " " + flags + " > " + dir_ +
                            "/" + name + ".log 2>&1";
    return run_shell(cmd);
  }
  void expect_same_losses(const std::string& a, const std::string& b, int64_t from, int64_t to, double rtol = 1e-5) {
    const Metrics ma = read_metrics(dir_ + "/" + a + "/metrics.jsonl"), mb = read_metrics(dir_ + "/" + b + "/metrics.jsonl");
    for (int64_t it = from; it <= to; ++it) {
      ASSERT_TRUE(ma.train.count(it) && mb.train.count(it)) << "iteration " << it;
      EXPECT_NEAR(mb.train.at(it), ma.train.at(it), rtol * std::fabs(ma.train.at(it))) << b << " iteration " << it;
      // --log-params-norm: the same parameters, each counted once, in every layout.
      ASSERT_TRUE(ma.params_norm.count(it) && mb.params_norm.count(it)) << "params norm at " << it;
      EXPECT_NEAR(mb.params_norm.at(it), ma.params_norm.at(it), rtol * ma.params_norm.at(it)) << b << " iteration " << it;
      // --log-num-zeros-in-grad: the same zero gradients (the batch's unused vocabulary rows), each
      // counted once; a sum that cancels to exactly 0 in one summation order may not in another, so
      // a few may differ (the padding a sharded optimizer adds: grad_ranges_test).
      ASSERT_TRUE(ma.num_zeros.count(it) && mb.num_zeros.count(it)) << "num zeros at " << it;
      EXPECT_GT(ma.num_zeros.at(it), 0) << a << " iteration " << it;
      EXPECT_NEAR(mb.num_zeros.at(it), ma.num_zeros.at(it), 1 + 0.005 * ma.num_zeros.at(it)) << b << " iteration " << it;
    }
    for (const auto& [it, loss] : ma.valid) {
      if (it >= from && it <= to) {
        EXPECT_NEAR(mb.valid.at(it), loss, rtol * std::fabs(loss)) << "validation " << it;
      }
    }
  }
  std::string dir_, flags_;
};


}  // namespace cs::test
