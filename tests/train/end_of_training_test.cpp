// Megatron's end of training (AscendSpeed's pretrain): a run that reaches --train-iters evaluates
// the next --eval-iters global batches of the validation split ("the end of training for val
// data"), saves its final checkpoint (with the validation cursor after that evaluation), then
// evaluates --eval-iters global batches of the test split from its start ("... for test data");
// each evaluation printed as Megatron prints it, between two lines of dashes, with the perplexity
// exp(min(20, loss)). A run stopped early (--exit-interval) evaluates neither.
#include <fmt/core.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "backend/backend.h"
#include "cli/run_util.h"
#include "train/datasets.h"
#include "train/heartbeat.h"
#include "train/metrics.h"
#include "train/validation.h"
#include "device_env.h"

namespace cs {
namespace {
namespace fs = std::filesystem;

class EndOfTraining : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/cs_end_" + std::to_string(getpid());
    fs::remove_all(dir_);
    ASSERT_EQ(0, test::run_binary("synth-data --output-prefix " + dir_ + "/data --vocab-size 101 --num-docs 60").status);
  }
  void TearDown() override { fs::remove_all(dir_); }
  TrainArgs args(int64_t iters) const {
    TrainArgs a;
    a.micro_batch = 2;
    a.global_batch = 4;
    a.train_iters = iters;
    a.seq_length = 16;
    a.data_path = {dir_ + "/data"};
    a.split = "70,20,10";
    a.eval_interval = 2;
    a.eval_iters = 2;
    a.lr = {1e-3, 1e-4, 0, iters * 4, LrDecay::Linear};
    a.log_interval = 1;
    a.print_log = false;
    return a;
  }
  std::string dir_;
};

TEST_F(EndOfTraining, ValidationContinuesAndTheTestSplitStartsAtItsBeginning) {
  SingleGroup world, tp;
  Model m(model_preset("tiny"), test::cpu_ctx(), tp, 2, 16);
  m.params().init(test::cpu_ctx(), 3);
  TrainArgs a = args(4);
  a.save_dir = dir_ + "/run";
  const TrainResult r = train(m, a, world);
  ASSERT_EQ(r.valid_losses.size(), 2u);  // iterations 2 and 4
  ASSERT_TRUE(std::isfinite(r.end_valid_loss) && std::isfinite(r.test_loss));
  // The same evaluations of the trained model, made here: validation after the two during training
  // (2 x 2 global batches of 4 samples consumed), the test split from sample 0.
  const Datasets d = open_datasets(a, false, false);
  ASSERT_TRUE(d.has_valid() && d.has_test());
  MicroBatch batch(2, 16);
  Validator valid(m, d.valid_src, world, 2 * 2, 2 * 2 * 4);
  EXPECT_EQ(valid.evaluate(batch), r.end_valid_loss);
  Validator test_split(m, d.test_src, world, 2 * 2, 0);
  EXPECT_EQ(test_split.evaluate(batch), r.test_loss);
  // The final checkpoint was written after the validation: its cursor counts three evaluations.
  const auto meta = nlohmann::json::parse(std::ifstream(dir_ + "/run/iter_0000004/meta.json"));
  EXPECT_EQ(meta.at("data").at("consumed_valid_samples").get<int64_t>(), 3 * 2 * 4);
}

// An evaluation keeps the run's heartbeat fresh (pulse must not take a long one for a stall): its
// progress hook runs after each micro-batch, and the heartbeat's time moves on while its iteration
// and loss stay those of the last step.
TEST_F(EndOfTraining, EvaluationsKeepTheHeartbeatFresh) {
  SingleGroup world, tp;
  Model m(model_preset("tiny"), test::cpu_ctx(), tp, 2, 16);
  m.params().init(test::cpu_ctx(), 3);
  const Datasets d = open_datasets(args(4), true, false);
  ASSERT_TRUE(d.has_valid());
  fs::create_directories(dir_ + "/run");
  HeartbeatWriter heart(dir_ + "/run", 4, 0.0);
  heart.beat(3, 2.5, "", true);
  const double before = read_heartbeat(dir_ + "/run")->time;
  MicroBatch batch(2, 16);
  Validator valid(m, d.valid_src, world, 2 * 2, 0);
  int calls = 0;
  std::vector<double> times;
  valid.evaluate(batch, [&] {
    ++calls;
    usleep(2000);
    heart.alive();
    times.push_back(read_heartbeat(dir_ + "/run")->time);
  });
  EXPECT_EQ(calls, 4);  // 2 global batches of 2 micro-batches
  ASSERT_EQ(times.size(), 4u);
  EXPECT_GT(times.front(), before);
  EXPECT_GT(times.back(), times.front());
  const Heartbeat hb = *read_heartbeat(dir_ + "/run");
  EXPECT_EQ(hb.iteration, 3);
  EXPECT_EQ(hb.last_loss, 2.5);
  EXPECT_EQ(hb.state, "running");
}

// The trainer refreshes the heartbeat after every evaluated micro-batch: with no interval between
// writes, a run that evaluates (twice during training, then the validation and test splits at the
// end: 4 evaluations of 2 global batches of 2 micro-batches) writes it exactly 16 times more than
// the same run without evaluations.
TEST_F(EndOfTraining, TheTrainerKeepsTheHeartbeatFreshThroughEvaluations) {
  int64_t writes[2];
  for (int k = 0; k < 2; ++k) {
    SingleGroup world, tp;
    Model m(model_preset("tiny"), test::cpu_ctx(), tp, 2, 16);
    m.params().init(test::cpu_ctx(), 3);
    TrainArgs a = args(4);
    a.save_dir = dir_ + "/beats" + std::to_string(k);
    a.heartbeat_interval = 0;
    if (k == 1) a.eval_iters = 0;
    const TrainResult r = train(m, a, world);
    ASSERT_EQ(r.iterations, 4);
    writes[k] = r.heartbeat_writes;
  }
  EXPECT_EQ(writes[0] - writes[1], 4 * 2 * 2) << writes[0] << " vs " << writes[1];
  EXPECT_GE(writes[1], 4 * 2 + 4) << "each step's micro-batches and each iteration's end";
}

TEST_F(EndOfTraining, PrintedAsMegatronPrintsItAndOnlyWhenTheRunEnds) {
  const std::string flags = "train --model tiny --vocab-size 101 --make-vocab-size-divisible-by 1 --seq-length 16 "
                            "--micro-batch-size 2 --global-batch-size 4 --lr 1e-3 --train-iters 4 --eval-interval 2 "
                            "--eval-iters 2 --split 70,20,10 --log-interval 1 --data-path " + dir_ + "/data --save " +
                            dir_ + "/run";
  const auto r = test::run_binary(flags);
  ASSERT_EQ(r.status, 0) << r.err;
  std::vector<std::string> lines;
  std::istringstream in(r.out);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  std::vector<std::string> evaluations;  // the text after "validation loss at ", in order
  for (size_t i = 1; i + 1 < lines.size(); ++i) {
    if (lines[i].rfind(" validation loss at ", 0) != 0) continue;
    EXPECT_EQ(lines[i - 1], std::string(lines[i].size() + 1, '-')) << lines[i];
    EXPECT_EQ(lines[i + 1], std::string(lines[i].size() + 1, '-')) << lines[i];
    const std::string at = lines[i].substr(20, lines[i].find(" | ") - 20);
    double loss = 0, ppl = 0;
    ASSERT_EQ(std::sscanf(lines[i].c_str() + lines[i].find(" | "), " | lm loss value: %lE | lm loss PPL: %lE | ", &loss,
                          &ppl), 2) << lines[i];
    EXPECT_EQ(lines[i], fmt::format(" validation loss at {} | lm loss value: {:.6E} | lm loss PPL: {:.6E} | ", at, loss,
                                    ppl));  // the format, to its trailing space
    EXPECT_NEAR(ppl, megatron_ppl(loss), 1e-5 * ppl) << lines[i];  // the loss printed is rounded
    evaluations.push_back(at);
    if (at == "the end of training for val data") {  // the final checkpoint comes between the two
      const size_t saved = r.out.find("saved checkpoint at iteration 4", r.out.find(lines[i]));
      EXPECT_NE(saved, std::string::npos);
      EXPECT_LT(saved, r.out.find("the end of training for test data"));
      EXPECT_EQ(r.out.find("saved checkpoint at iteration 4"), saved);  // written once
    }
  }
  EXPECT_EQ(evaluations, (std::vector<std::string>{"iteration 2", "iteration 4", "the end of training for val data",
                                                   "the end of training for test data"}));
  // metrics.jsonl marks them; the test split's loss has its own keys.
  std::ifstream f(dir_ + "/run/metrics.jsonl");
  int ends = 0;
  for (std::string l; std::getline(f, l);) {
    const auto j = nlohmann::json::parse(l);
    if (!j.value("end_of_training", false)) continue;
    ++ends;
    EXPECT_EQ(j.at("iteration"), 4);
    EXPECT_TRUE(j.contains("valid_lm_loss") || j.contains("test_lm_loss")) << l;
  }
  EXPECT_EQ(ends, 2);
  // Stopped early by --exit-interval: neither evaluation.
  const auto early = test::run_binary(flags + "2 --exit-interval 3 --train-iters 6 --lr-decay-iters 4");
  ASSERT_EQ(early.status, 0) << early.err;
  EXPECT_EQ(early.out.find("the end of training"), std::string::npos) << early.out;
  // Stopped by --exit-interval at the last iteration too (Megatron exits there before its end of
  // training): saved, heartbeat "stopped"; the run resumed there trains nothing, evaluates, and
  // leaves its checkpoint as it was.
  const auto at_end = test::run_binary(flags + "3 --exit-interval 4");
  ASSERT_EQ(at_end.status, 0) << at_end.err;
  EXPECT_EQ(at_end.out.find("the end of training"), std::string::npos) << at_end.out;
  std::ifstream hb(dir_ + "/run3/heartbeat.json");
  EXPECT_NE(std::string(std::istreambuf_iterator<char>(hb), {}).find("\"stopped\""), std::string::npos);
  const auto meta_before = fs::last_write_time(dir_ + "/run3/iter_0000004/meta.json");
  const auto resumed = test::run_binary(flags + "3 --load " + dir_ + "/run3");
  ASSERT_EQ(resumed.status, 0) << resumed.err;
  EXPECT_NE(resumed.out.find("the end of training for val data"), std::string::npos) << resumed.out;
  EXPECT_NE(resumed.out.find("the end of training for test data"), std::string::npos) << resumed.out;
  EXPECT_EQ(resumed.out.find("saved checkpoint"), std::string::npos) << resumed.out;
  EXPECT_EQ(fs::last_write_time(dir_ + "/run3/iter_0000004/meta.json"), meta_before);
  std::ifstream hb2(dir_ + "/run3/heartbeat.json");
  EXPECT_NE(std::string(std::istreambuf_iterator<char>(hb2), {}).find("\"finished\""), std::string::npos);
}

TEST(MegatronPpl, CapsTheExponentAtTwenty) {
  EXPECT_EQ(megatron_ppl(2.0), std::exp(2.0));
  EXPECT_EQ(megatron_ppl(30.0), std::exp(20.0));
  EXPECT_EQ(megatron_ppl(NAN), std::exp(20.0));  // Python's min(20, nan) is 20
}

}  // namespace
}  // namespace cs
