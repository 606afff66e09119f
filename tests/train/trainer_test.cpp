// The training loop: the loss falls on a repetitive dataset; 4 micro-batches of 1 equal one of 4;
// injected inf gradients are skipped and counted (fp16 loss scaling) or counted as nan and stop
// the run with --exit-on-nan; the log record's throughput fields follow the FLOPs formula.
#include <fmt/core.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <regex>

#include "backend/backend.h"
#include "data/indexed_dataset.h"
#include "model/flops.h"
#include "train/loss_curve.h"
#include "train/metrics.h"
#include "train/trainer.h"
#include "device_env.h"
#include "train/train_fixture.h"

namespace cs {
namespace {

std::string repetitive_dataset() {  // short cycles
  return test::write_dataset(::testing::TempDir() + "/cs_train_data_" + std::to_string(getpid()), 40, 30,
                             [](int d, int i) { return (d % 4) * 20 + (i % 10); });
}

ModelConfig tiny() { return test::tiny16(); }

TrainArgs args(const std::string& data, int64_t iters) {
  TrainArgs a;
  a.micro_batch = 4;
  a.global_batch = 8;
  a.train_iters = iters;
  a.seq_length = 16;
  a.data_path = {data};
  a.lr = {3e-3, 3e-4, 3 * 8, iters * 8, LrDecay::Cosine};  // in samples: 3 and iters steps of 8
  a.log_interval = 5;
  a.print_log = false;
  return a;
}

TEST(Trainer, LossFallsWellBelowItsStart) {
  SingleGroup world, tp;
  Model m(tiny(), test::cpu_ctx(), tp, 4, 16);
  m.params().init(test::cpu_ctx(), 1);
  TrainResult r = train(m, args(repetitive_dataset(), 60), world);
  ASSERT_EQ(r.losses.size(), 60u);
  EXPECT_GT(r.losses.front(), 4.0);                  // ~ln(101) at the start
  EXPECT_LT(r.losses.back(), 0.5 * r.losses.front()) << r.losses.back();
  EXPECT_EQ(r.consumed_samples, 60 * 8);
  EXPECT_EQ(r.records.size(), 12u);
}

TEST(Trainer, FourMicroBatchesOfOneEqualOneOfFour) {
  const std::string data = repetitive_dataset();
  std::vector<float> grads[2];
  double loss[2];
  for (int k = 0; k < 2; ++k) {
    SingleGroup world, tp;
    Model m(tiny(), test::cpu_ctx(), tp, 4, 16);
    m.params().init(test::cpu_ctx(), 2);
    TrainArgs a = args(data, 1);
    a.micro_batch = k == 0 ? 1 : 4;
    a.global_batch = 4;
    a.grad_hook = [&](int64_t, Tensor& g) { grads[k].assign(g.f32(), g.f32() + g.numel()); };
    loss[k] = train(m, a, world).losses[0];
  }
  EXPECT_NEAR(loss[0], loss[1], 1e-6);
  double max_abs = 0, max_err = 0;
  for (size_t i = 0; i < grads[0].size(); ++i) {
    max_abs = std::max(max_abs, double(std::fabs(grads[1][i])));
    max_err = std::max(max_err, double(std::fabs(grads[0][i] - grads[1][i])));
  }
  EXPECT_LT(max_err, 1e-5 * max_abs) << "fp32 rounding only";
}

TEST(Trainer, InfGradientsAreSkippedAndCountedUnderLossScaling) {
  SingleGroup world, tp;
  Model m(tiny(), test::cpu_ctx(), tp, 4, 16);
  m.params().init(test::cpu_ctx(), 3);
  TrainArgs a = args(repetitive_dataset(), 6);
  a.fp16 = true;
  a.initial_loss_scale = 1024;
  a.hysteresis = 1;
  std::vector<float> before;
  a.grad_hook = [&](int64_t it, Tensor& g) {
    if (it == 3) {
      g.f32()[17] = INFINITY;
      before.assign(m.params().flat_params().f32(), m.params().flat_params().f32() + 64);
    }
    if (it == 4) {  // the skipped step left the weights alone
      for (int i = 0; i < 64; ++i) ASSERT_EQ(m.params().flat_params().f32()[i], before[size_t(i)]);
    }
  };
  TrainResult r = train(m, a, world);
  EXPECT_EQ(r.skipped, 1);
  EXPECT_EQ(r.nan, 0);
  EXPECT_EQ(r.records[0].skipped_iters, 1);
  EXPECT_EQ(r.records[1].loss_scale, 512);  // halved by the overflow (hysteresis 1)
}

// Megatron's log for intervals with nothing to average: no "lm loss" where no iteration stepped,
// no "grad norm" where the logged iteration was skipped; a skipped iteration whose loss is NaN
// counts as a nan iteration; what compare reads back (all skipped: not compared; a nan one: NaN).
TEST(Trainer, IntervalsWithEveryStepSkippedLogNoLossAsMegatronDoes) {
  SingleGroup world, tp;
  Model m(tiny(), test::cpu_ctx(), tp, 4, 16);
  m.params().init(test::cpu_ctx(), 3);
  TrainArgs a = args(repetitive_dataset(), 6);
  a.fp16 = true;
  a.initial_loss_scale = 65536;
  a.hysteresis = 1;
  a.log_interval = 2;
  a.grad_hook = [&](int64_t it, Tensor& g) {
    if (it == 1 || it == 2 || it == 4 || it == 5) g.f32()[3] = INFINITY;
    if (it == 5) {  // the skipped step keeps them: iteration 6's loss is NaN
      const Tensor p = m.params().flat_params();
      std::fill(p.f32(), p.f32() + p.numel(), NAN);
    }
  };
  const TrainResult r = train(m, a, world);
  ASSERT_EQ(r.records.size(), 3u);
  const LogRecord &all_skipped = r.records[0], &last_skipped = r.records[1], &diverged = r.records[2];
  EXPECT_FALSE(all_skipped.has_loss);
  EXPECT_FALSE(all_skipped.has_grad_norm);
  EXPECT_EQ(all_skipped.skipped_iters, 2);
  const std::string line = format_log_line(all_skipped), json = format_jsonl(all_skipped);
  EXPECT_EQ(line.find("lm loss"), std::string::npos) << line;
  EXPECT_EQ(line.find("grad norm"), std::string::npos) << line;
  EXPECT_NE(line.find("| loss scale: 16384.0 | number of skipped iterations:   2 | number of nan iterations:   0 |"),
            std::string::npos) << line;
  EXPECT_EQ(json.find("lm_loss"), std::string::npos) << json;
  EXPECT_EQ(json.find("grad_norm"), std::string::npos) << json;
  EXPECT_TRUE(last_skipped.has_loss);  // iteration 3 stepped: its loss
  EXPECT_TRUE(std::isfinite(last_skipped.lm_loss));
  EXPECT_FALSE(last_skipped.has_grad_norm);
  EXPECT_EQ(diverged.skipped_iters, 2);
  EXPECT_EQ(diverged.nan_iters, 1);
  EXPECT_FALSE(diverged.has_loss);  // Megatron prints no NaN average: the nan count tells
  EXPECT_EQ(format_log_line(diverged).find("lm loss"), std::string::npos) << format_log_line(diverged);
  EXPECT_EQ(r.nan, 1);
  // compare reads the first interval as skipped (not compared), the last as a divergence.
  const std::string path = ::testing::TempDir() + "/cs_trainer_skipped_" + std::to_string(getpid()) + ".log";
  {
    std::ofstream f(path);
    for (const LogRecord& rec : r.records) f << format_log_line(rec) << "\n";
  }
  const LossCurve c = read_loss_curve(path);
  EXPECT_EQ(c.skipped, (std::set<int64_t>{2}));
  ASSERT_EQ(c.loss.size(), 2u);
  EXPECT_NEAR(c.loss.at(4), last_skipped.lm_loss, 1e-6 * last_skipped.lm_loss);
  EXPECT_TRUE(std::isnan(c.loss.at(6)));
}

// Megatron's --loss-scale: a constant scale; an overflowing step is skipped and the scale stays.
TEST(Trainer, AStaticLossScaleSkipsOverflowsAndStays) {
  SingleGroup world, tp;
  Model m(tiny(), test::cpu_ctx(), tp, 4, 16);
  m.params().init(test::cpu_ctx(), 4);
  TrainArgs a = args(repetitive_dataset(), 4);
  a.fp16 = true;
  a.static_loss_scale = 512;
  a.hysteresis = 1;
  a.loss_scale_window = 1;  // a dynamic scale would double after every clean step
  a.log_interval = 1;
  a.grad_hook = [&](int64_t it, Tensor& g) {
    if (it == 2) g.f32()[5] = INFINITY;
  };
  const TrainResult r = train(m, a, world);
  EXPECT_EQ(r.skipped, 1);
  ASSERT_EQ(r.records.size(), 4u);
  for (const LogRecord& rec : r.records) EXPECT_EQ(rec.loss_scale, 512) << rec.iteration;
  EXPECT_EQ(r.records[1].skipped_iters, 1);
}

TEST(Trainer, NonFiniteIterationsAreCountedAndExitOnNanStops) {
  SingleGroup world, tp;
  Model m(tiny(), test::cpu_ctx(), tp, 4, 16);
  m.params().init(test::cpu_ctx(), 4);
  TrainArgs a = args(repetitive_dataset(), 20);
  a.exit_on_nan = 3;
  a.grad_hook = [&](int64_t it, Tensor& g) {
    if (it >= 4) g.f32()[0] = NAN;
  };
  TrainResult r = train(m, a, world);
  EXPECT_TRUE(r.stopped_on_nan);
  EXPECT_EQ(r.iterations, 6);
  EXPECT_EQ(r.nan, 3);
  ASSERT_EQ(r.records.size(), 2u);
  EXPECT_EQ(r.records[0].nan_iters, 2);  // iterations 4 and 5, logged at 5
  EXPECT_EQ(r.records[1].iteration, 6);  // the stop is logged too
  EXPECT_EQ(r.records[1].nan_iters, 1);
}

TEST(Trainer, LogLineParsesAndTflopsFollowsTheFormula) {
  SingleGroup world, tp;
  Model m(tiny(), test::cpu_ctx(), tp, 4, 16);
  m.params().init(test::cpu_ctx(), 5);
  TrainArgs a = args(repetitive_dataset(), 5);
  a.log_params_norm = true;
  a.log_num_zeros = true;  // --log-num-zeros-in-grad: the logged iteration's zero gradients, as seen here
  double zeros = -1;
  a.grad_hook = [&](int64_t it, Tensor& g) {
    if (it != 5) return;
    zeros = 0;
    for (int64_t i = 0; i < g.numel(); ++i) zeros += g.f32()[i] == 0.f;
  };
  TrainResult r = train(m, a, world);
  const LogRecord& rec = r.records.at(0);
  const std::string line = format_log_line(rec);
  // --log-params-norm: the L2 norm of the parameters after the logged (last) iteration.
  double sq = 0;
  const Tensor p = m.params().flat_params();
  for (int64_t i = 0; i < p.numel(); ++i) sq += double(p.f32()[i]) * p.f32()[i];
  EXPECT_NEAR(rec.params_norm, std::sqrt(sq), 1e-9 * std::sqrt(sq));
  EXPECT_NE(line.find(fmt::format(" params norm: {:.3f} | number of skipped", std::sqrt(sq))), std::string::npos) << line;
  EXPECT_GT(zeros, 0);  // the rows of the vocabulary no token of the batch uses
  EXPECT_EQ(rec.num_zeros, zeros);
  EXPECT_NE(line.find(fmt::format(" grad norm: {:.3f} | num zeros: {:.1f} | params norm:", rec.grad_norm, zeros)),
            std::string::npos) << line;
  const std::regex re(
      R"( iteration +(\d+)/ +(\d+) \| consumed samples: +(\d+) \| elapsed time per iteration \(ms\): ([\d.]+) \| )"
      R"(learning rate: ([\d.E+-]+) \| global batch size: +(\d+) \| lm loss: ([\d.E+-]+) \| loss scale: ([\d.]+) \| )"
      R"(grad norm: ([\d.]+) \| num zeros: [\d.]+ \| params norm: [\d.]+ \| number of skipped iterations: +(\d+) \| )"
      R"(number of nan iterations: +(\d+) \| )"
      R"(samples/s/p: ([\d.]+) \| tokens/s/p: ([\d.]+) \| TFLOPs/p: ([\d.]+) \|)");
  std::smatch mm;
  ASSERT_TRUE(std::regex_match(line, mm, re)) << line;
  EXPECT_EQ(std::stoll(mm[1]), 5);
  EXPECT_EQ(std::stoll(mm[3]), 40);
  EXPECT_NEAR(std::stod(mm[7]), rec.lm_loss, 1e-6 * rec.lm_loss);
  // Hand-computed model FLOPs for the tiny config (V 101, D 48, F 80, L 2) at 8 x 16 tokens:
  const double n = 8 * 16, d = 48, f = 80, v = 101, l = 2, t = 16;
  const double hand = 3 * (2 * n * (l * (4 * d * d + 3 * d * f) + v * d) + l * 4 * 8 * t * t * d);
  EXPECT_DOUBLE_EQ(model_flops(tiny(), 8, 16), hand);
  const double step_s = rec.elapsed_ms_per_iter / 1e3;
  EXPECT_NEAR(rec.tflops_per_device, hand / step_s / 1e12, 1e-9 * rec.tflops_per_device);
  EXPECT_NEAR(rec.samples_per_s_per_device, 8 / step_s, 1e-9 * rec.samples_per_s_per_device);
  EXPECT_NEAR(rec.tokens_per_s_per_device, rec.samples_per_s_per_device * 16, 1e-9 * rec.tokens_per_s_per_device);
}

}  // namespace
}  // namespace cs
