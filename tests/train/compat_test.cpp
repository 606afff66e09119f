// A checkpoint written before the backend boundary (tests/fixtures/compat, made by commit 5f1e655)
// loads and resumes with today's binary on the old run's trajectory: its iteration, schedule,
// loss scaler and data cursor carry on, so every lm loss after the resume and the validation
// losses equal the old run's within 1e-6 relative, and the final weights within fp32 rounding.
// (Bit for bit until the attention kernel's exp became a vectorised polynomial, within 2 ulp of
// the C library's: the last bits moved, nothing else.)
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "checkpoint/safetensors.h"
#include "cli/run_util.h"
#include "closeness.h"

namespace cs {
namespace {
namespace fs = std::filesystem;

const std::string kFix = std::string(CS_SOURCE_DIR) + "/tests/fixtures/compat";

// iteration -> lm_loss, and iteration -> validation loss, of a metrics.jsonl.
struct Losses {
  std::map<int64_t, double> train, valid;
};

Losses read_metrics(const std::string& path) {
  Losses l;
  std::ifstream f(path);
  for (std::string line; std::getline(f, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("lm_loss")) l.train[j["iteration"].get<int64_t>()] = j["lm_loss"].get<double>();
    if (j.contains("valid_lm_loss") && !j.contains("end_of_training")) l.valid[j["iteration"].get<int64_t>()] = j["valid_lm_loss"].get<double>();
  }
  return l;
}

TEST(Compat, CheckpointFromBeforeTheBackendBoundaryResumesOnItsTrajectory) {
  const std::string dir = ::testing::TempDir() + "/cs_compat_" + std::to_string(getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  ASSERT_EQ(0, test::run_binary("synth-data --output-prefix " + dir + "/synth --vocab-size 101 --num-docs 40").status);
  fs::copy(kFix + "/ckpt", dir + "/run", fs::copy_options::recursive);
  const auto r = test::run_binary(
      "train --model tiny --vocab-size 101 --make-vocab-size-divisible-by 1 --seq-length 16 --micro-batch-size 2 "
      "--global-batch-size 4 --lr 1e-3 --lr-warmup-iters 5 --lr-decay-style cosine --log-interval 1 "
      "--train-iters 20 --fp16 --initial-loss-scale 256 --loss-scale-window 3 --eval-interval 5 --eval-iters 1 "
      "--data-path " + dir + "/synth --save " + dir + "/run --save-interval 10 --load " + dir + "/run");
  ASSERT_EQ(r.status, 0) << r.err;
  const Losses old_run = read_metrics(kFix + "/metrics_old.jsonl"), now = read_metrics(dir + "/run/metrics.jsonl");
  int compared = 0;
  for (int64_t it = 11; it <= 20; ++it) {
    ASSERT_TRUE(now.train.count(it)) << "iteration " << it << " not logged";
    EXPECT_NEAR(now.train.at(it), old_run.train.at(it), 1e-6 * old_run.train.at(it)) << "iteration " << it;
    ++compared;
  }
  for (int64_t it : {15, 20})
    EXPECT_NEAR(now.valid.at(it), old_run.valid.at(it), 1e-6 * old_run.valid.at(it)) << "validation at " << it;
  EXPECT_EQ(compared, 10);
  const SafetensorsFile want = SafetensorsFile::open(kFix + "/final_model_iter20.safetensors");
  const SafetensorsFile got = SafetensorsFile::open(dir + "/run/iter_0000020/model-tp00-pp000.safetensors");
  int tensors = 0;
  for (const std::string& name : want.names()) {
    const Tensor a = want.tensor(name), b = got.tensor(name);
    ASSERT_EQ(a.shape, b.shape) << name;
    std::vector<float> x(size_t(a.numel())), y(x.size());
    want.read_f32(name, x.data(), a.numel());
    got.read_f32(name, y.data(), b.numel());
    EXPECT_TRUE(test::all_close(y, x, 1e-6, 1e-5, name + " against the old run's"));
    ++tensors;
  }
  EXPECT_EQ(tensors, 3 + 7 * 2);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace cs
