// The optimizer pieces: AdamW against torch.optim.AdamW (fixture from
// tools/reference/make_optim_fixture.py), the lr schedule against its formula at chosen
// iterations, clipping to exactly the bound, the dynamic loss scaler's rules, weight decay
// skipping norm weights.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "backend/host_copy.h"
#include "checkpoint/safetensors.h"
#include "closeness.h"
#include "device_env.h"
#include "core/half.h"
#include "model/params.h"
#include "optim/adamw.h"
#include "optim/grad_clip.h"
#include "optim/loss_scaler.h"
#include "optim/lr_schedule.h"

namespace cs {
namespace {

// These tests run on the CPU backend, whose memory is the host's: host vectors are its tensors.
Ctx& cpu() { return test::cpu_ctx(); }

std::vector<float> read(const SafetensorsFile& f, const std::string& name) {
  std::vector<float> v(size_t(f.tensor(name).numel()));
  f.read_f32(name, v.data(), int64_t(v.size()));
  return v;
}

TEST(AdamW, EqualsTorchAdamWOverThreeSteps) {
  SafetensorsFile f(std::string(CS_SOURCE_DIR) + "/tests/fixtures/optim/adamw.safetensors");
  const auto& md = f.metadata();
  const double lr = std::stod(md.at("lr")), b1 = std::stod(md.at("beta1")), b2 = std::stod(md.at("beta2"));
  const double eps = std::stod(md.at("eps")), wd = std::stod(md.at("weight_decay"));
  const int steps = std::stoi(md.at("steps"));
  for (std::string p : {"w", "norm"}) {
    auto param = read(f, p + ".init");
    std::vector<float> m(param.size()), v(param.size());
    const int64_t n = int64_t(param.size());
    Tensor pt(param.data(), {n}), mt(m.data(), {n}), vt(v.data(), {n});
    for (int s = 0; s < steps; ++s) {
      auto g = read(f, p + ".grad" + std::to_string(s));
      Tensor gt(g.data(), {n});
      cpu_ops().adamw_update(cpu(), pt, gt, mt, vt, lr, b1, b2, eps, p == "w" ? wd : 0.0, s + 1, 1.f, Tensor{nullptr, {0}, DType::BF16});
    }
    // Same fp32 operations in the same order as PyTorch's kernel: equal to a few ulps.
    EXPECT_TRUE(test::all_close(param, read(f, p + ".final"), 1e-7, 1e-6, p + " after AdamW"));
    if (p == "w") {
      EXPECT_TRUE(test::all_close(m, read(f, "w.exp_avg"), 1e-8, 1e-6, "exp_avg"));
      EXPECT_TRUE(test::all_close(v, read(f, "w.exp_avg_sq"), 1e-10, 1e-6, "exp_avg_sq"));
    }
  }
}

TEST(AdamW, WeightDecaySkipsNormWeights) {
  ModelConfig c = model_preset("tiny");
  ParamStore ps(c, ModelShard::whole(), cpu_backend());
  ps.init(cpu(), 5);
  const std::vector<float> before = read_f32(cpu(), ps.flat_params());
  AdamW opt(ps, {0.9, 0.999, 1e-8, 0.5}, cpu());
  opt.step(ps, 0.1);  // zero gradients: only the decay moves parameters
  for (const ParamSpec& s : ps.specs()) {
    const float* now = ps.param(s).f32();
    const float factor = s.is_norm ? 1.f : 1.f - 0.1f * 0.5f;
    for (int64_t i = 0; i < s.shape.numel(); i += 7)
      ASSERT_FLOAT_EQ(now[i], before[size_t(s.offset + i)] * factor) << s.name;
  }
}

// fp32 master weights with a bf16 compute copy is a configuration: the optimizer keeps an f32
// master copy, updates it exactly as for f32 parameters, and casts it into the parameters.
TEST(AdamW, Bf16ParametersKeepAnF32MasterCopy) {
  ModelConfig c = model_preset("tiny");
  ParamStore f32(c, ModelShard::whole(), cpu_backend()), bf16(c, ModelShard::whole(), cpu_backend(), DType::BF16);
  f32.init(cpu(), 5);
  bf16.init(cpu(), 5);
  const std::vector<float> start = read_f32(cpu(), f32.flat_params());
  // Start both from the same (bf16-representable) weights, so the two optimizers see the same values.
  std::vector<uint16_t> half(start.size());
  std::vector<float> rounded(start.size());
  for (size_t i = 0; i < start.size(); ++i) {
    half[i] = f32_to_bf16(start[i]);
    rounded[i] = bf16_to_f32(half[i]);
  }
  cpu_backend().upload(cpu(), rounded.data(), f32.flat_params());
  cpu_backend().upload(cpu(), half.data(), bf16.flat_params());
  AdamW a32(f32, {0.9, 0.999, 1e-8, 0.1}, cpu()), a16(bf16, {0.9, 0.999, 1e-8, 0.1}, cpu());
  EXPECT_EQ(a16.gather(bf16).master.dtype, DType::F32);
  EXPECT_EQ(read_f32(cpu(), a16.gather(bf16).master), rounded);  // the master copy starts as the parameters
  std::vector<float> g(start.size());
  for (size_t i = 0; i < g.size(); ++i) g[i] = float(int(i % 13) - 6) * 1e-3f;
  cpu_backend().upload(cpu(), g.data(), f32.flat_grads());
  cpu_backend().upload(cpu(), g.data(), bf16.flat_grads());
  for (int step = 0; step < 3; ++step) {
    a32.step(f32, 1e-2);
    a16.step(bf16, 1e-2);
  }
  const std::vector<float> master = read_f32(cpu(), a16.gather(bf16).master), want = read_f32(cpu(), f32.flat_params());
  EXPECT_EQ(master, want);  // the same f32 arithmetic
  std::vector<uint16_t> now(start.size());
  cpu_backend().download(cpu(), bf16.flat_params(), now.data());
  for (size_t i = 0; i < now.size(); ++i) ASSERT_EQ(now[i], f32_to_bf16(want[i])) << i;
  ParamStore bad_grads(c, ModelShard::whole(), cpu_backend(), DType::BF16, DType::BF16);
  EXPECT_THROW(AdamW(bad_grads, {}, cpu()), Error);  // the optimizer's arithmetic is f32
}

TEST(LrSchedule, MatchesMegatronsFormulaAtChosenIterations) {
  LrSchedule s{1e-3, 1e-4, 10, 110, LrDecay::Cosine};
  EXPECT_DOUBLE_EQ(s.lr(0), 0.0);
  EXPECT_DOUBLE_EQ(s.lr(5), 5e-4);
  EXPECT_DOUBLE_EQ(s.lr(10), 1e-3);
  EXPECT_NEAR(s.lr(60), 1e-4 + 0.5 * (std::cos(M_PI * 0.5) + 1) * 9e-4, 1e-15);  // midpoint
  EXPECT_NEAR(s.lr(35), 1e-4 + 0.5 * (std::cos(M_PI * 0.25) + 1) * 9e-4, 1e-15);
  EXPECT_DOUBLE_EQ(s.lr(110), 1e-4);
  EXPECT_DOUBLE_EQ(s.lr(500), 1e-4);
  s.style = LrDecay::Linear;
  EXPECT_NEAR(s.lr(35), 1e-4 + 0.75 * 9e-4, 1e-15);
  s.style = LrDecay::Constant;
  EXPECT_DOUBLE_EQ(s.lr(35), 1e-3);
  EXPECT_THROW(parse_lr_decay("exponential"), UsageError);  // a WSD anneal shape, not a decay style
}

// Megatron's get_lr, written out as Megatron writes it (steps in samples, the warmup a float).
double megatron_lr(double max_lr, double min_lr, double init_lr, double warmup, double decay, bool cosine, double steps) {
  if (warmup > 0 && steps <= warmup) return init_lr + (max_lr - init_lr) * steps / warmup;
  if (steps > decay) return min_lr;
  const double ratio = (steps - warmup) / (decay - warmup);
  const double coeff = cosine ? 0.5 * (std::cos(M_PI * ratio) + 1.0) : 1.0 - ratio;
  return min_lr + coeff * (max_lr - min_lr);
}

// AscendSpeed's 7B script: --train-iters 1024, global batch 8, --lr-warmup-fraction .1: Megatron
// warms up over 0.1 x 1024 x 8 = 819.2 samples, so iteration 103 (816 samples done) still warms
// up (an iteration count of 102 would have finished it), and the decay is measured from 819.2.
TEST(LrSchedule, WarmupEndsBetweenIterationsAsMegatrons) {
  const double warmup = 0.1 * 1024 * 8;
  LrSchedule s{1e-5, 1e-6, warmup, 1024 * 8, LrDecay::Cosine};
  for (int64_t it : {0, 1, 50, 101, 102, 103, 104, 300, 1023, 1024, 1100})
    EXPECT_DOUBLE_EQ(s.lr(it * 8), megatron_lr(1e-5, 1e-6, 0, warmup, 8192, true, double(it * 8))) << it;
  EXPECT_LT(s.lr(102 * 8), 1e-5);  // still warming up
  EXPECT_DOUBLE_EQ(s.lr(102 * 8), 1e-5 * 816 / 819.2);
  // --lr-warmup-init: the warmup starts there.
  s.init_lr = 2e-6;
  EXPECT_DOUBLE_EQ(s.lr(0), 2e-6);
  EXPECT_DOUBLE_EQ(s.lr(400), megatron_lr(1e-5, 1e-6, 2e-6, warmup, 8192, true, 400));
  s.style = LrDecay::Linear;
  EXPECT_DOUBLE_EQ(s.lr(4000), megatron_lr(1e-5, 1e-6, 2e-6, warmup, 8192, false, 4000));
}

// Megatron-core's own OptimizerParamScheduler (tests/fixtures/optim/megatron_lr.json, written by
// tools/fixtures/make_lr_fixture.py): inverse-square-root, WSD with each anneal shape (and none),
// cosine and linear, at every boundary of their warmups, anneals and decays; and the weight decay,
// constant or increasing linearly or along a cosine, at the same steps.
TEST(LrSchedule, EveryStyleEqualsMegatronCoresScheduler) {
  std::ifstream f(std::string(CS_SOURCE_DIR) + "/tests/fixtures/optim/megatron_lr.json");
  ASSERT_TRUE(f.good()) << "missing megatron_lr.json; run tools/fixtures/make_lr_fixture.py";
  const nlohmann::json cases = nlohmann::json::parse(f);
  ASSERT_GE(cases.size(), 9u);
  int wsd_shapes = 0, wd_styles = 0;
  for (const auto& c : cases) {
    LrSchedule s{c["max_lr"].get<double>(), c["min_lr"].get<double>(), c["warmup"].get<double>(),
                 c["decay"].get<int64_t>(), parse_lr_decay(c["style"].get<std::string>())};
    s.init_lr = c["init_lr"].get<double>();
    s.wsd_decay_steps = c["wsd"].get<int64_t>();
    s.wsd_style = parse_wsd_decay(c["wsd_style"].get<std::string>());
    wsd_shapes += s.style == LrDecay::WSD;
    const SchedulerSettings w{s, c["start_wd"].get<double>(), c["end_wd"].get<double>(),
                              parse_wd_incr(c["wd_style"].get<std::string>()), c["wd_steps"].get<int64_t>()};
    wd_styles += w.wd_style != WdIncr::Constant;
    const auto& steps = c["steps"];
    ASSERT_GT(steps.size(), 40u);
    for (size_t i = 0; i < steps.size(); ++i) {
      const double want = c["lr"][i].get<double>(), want_wd = c["wd"][i].get<double>();
      EXPECT_NEAR(s.lr(steps[i].get<int64_t>()), want, 1e-15 * std::max(want, 1e-30))
          << c["style"] << " " << c["wsd_style"] << " at " << steps[i];
      EXPECT_NEAR(w.wd(steps[i].get<int64_t>()), want_wd, 1e-15 * std::max(want_wd, 1e-30))
          << c["wd_style"] << " at " << steps[i];
    }
  }
  EXPECT_GE(wsd_shapes, 5);
  EXPECT_EQ(wd_styles, 2);
  EXPECT_THROW(parse_lr_decay("wsd"), UsageError);  // Megatron's name is "WSD"
  EXPECT_THROW(parse_wsd_decay("sqrt"), UsageError);
}

// The global norm through the device reduction and the group, read back once.
double norm_of(const Tensor& t, Group& world) {
  double sq = 0;
  grad_sq_norm(cpu(), t, world, Tensor(&sq, {1}, DType::F64));
  return std::sqrt(sq);
}

TEST(GradClip, ScalesToExactlyTheBoundAndLeavesSmallerNormsAlone) {
  std::vector<float> g = {3, 4, 0, 12};  // norm 13
  Tensor t(g.data(), {4});
  SingleGroup world;
  const double norm = norm_of(t, world);
  EXPECT_DOUBLE_EQ(norm, 13.0);
  // The coefficient AdamW::step applies to the gradients it reads.
  cpu_ops().scale(cpu(), t, clip_coefficient(norm, 1.0));
  EXPECT_NEAR(norm_of(t, world), 1.0, 1e-6);
  EXPECT_NEAR(g[3], 12.0 / 13.0, 1e-6);
  EXPECT_EQ(clip_coefficient(0.5, 1.0), 1.f);  // a smaller norm is left alone
  EXPECT_EQ(clip_coefficient(13.0, 0.0), 1.f);  // --clip-grad 0: no clipping
  std::vector<float> bad = {1, INFINITY};
  const double bad_norm = norm_of(Tensor(bad.data(), {2}), world);
  EXPECT_FALSE(std::isfinite(bad_norm));
  EXPECT_EQ(clip_coefficient(bad_norm, 1.0), 1.f);  // a non-finite norm skips or stops the step instead
}

TEST(LossScaler, HalvesAfterHysteresisDoublesAfterWindowFloorsAtMin) {
  LossScaler s(true, 1024, /*window=*/3, /*hysteresis=*/2, /*min=*/256);
  s.update(true);
  EXPECT_EQ(s.scale(), 1024);  // first overflow absorbed by hysteresis
  s.update(true);
  EXPECT_EQ(s.scale(), 512);
  s.update(true);
  EXPECT_EQ(s.scale(), 256);
  s.update(true);
  EXPECT_EQ(s.scale(), 256);  // floor
  for (int i = 0; i < 3; ++i) s.update(false);
  EXPECT_EQ(s.scale(), 512);
  LossScaler fixed(false, 1, 3, 2, 1);
  fixed.update(true);
  EXPECT_EQ(fixed.scale(), 1);
}

}  // namespace
}  // namespace cs
