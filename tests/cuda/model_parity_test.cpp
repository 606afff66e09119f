// The whole model on the CUDA backend against the CPU backend, from the same initial weights and
// tokens: one forward and backward, then one AdamW step. fp32 on both must agree to fp32 rounding
// (the GEMMs run in true fp32 on the GPU: CUBLAS_COMPUTE_32F, no TF32); --bf16 and --fp16 on the
// GPU (Precision::bf16() / fp16(): half compute copies and GEMM inputs) must track the fp32 CPU
// model as closely as the CPU's own bf16 model does (tests/model/bf16_model_test.cpp). RoPE and
// ALiBi. Skipped, with a message, without a visible GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "backend/device_buffer.h"
#include "backend/host_copy.h"
#include "model/model.h"
#include "optim/adamw.h"

namespace cs {
namespace {

enum class Prec { F32, BF16, F16 };

Precision precision_of(Prec p) {
  return p == Prec::BF16 ? Precision::bf16() : p == Prec::F16 ? Precision::fp16() : Precision{};
}

// Cosine and relative RMS difference of two gradient ranges.
std::pair<double, double> compare(const std::vector<float>& want, const std::vector<float>& got, int64_t lo, int64_t hi) {
  double dot = 0, nw = 0, ng = 0, diff = 0;
  for (int64_t i = lo; i < hi; ++i) {
    const double x = want[size_t(i)], y = got[size_t(i)];
    dot += x * y, nw += x * x, ng += y * y, diff += (x - y) * (x - y);
  }
  return {nw > 0 && ng > 0 ? dot / std::sqrt(nw * ng) : (nw == ng ? 1.0 : 0.0), nw > 0 ? std::sqrt(diff / nw) : diff};
}

class CudaParity : public ::testing::TestWithParam<std::tuple<PositionType, Prec>> {
 protected:
  void SetUp() override {
    if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device is visible: the CUDA model tests skip";
  }
};

TEST_P(CudaParity, ForwardBackwardAndAdamStepMatchTheCpu) {
  const auto [position, prec] = GetParam();
  auto cpu = make_backend("cpu"), gpu = make_backend("cuda");
  auto cc = cpu->make_context(), gc = gpu->make_context();
  SingleGroup tp_cpu, tp_gpu;
  ModelConfig c = model_preset("tiny");
  c.hidden_size = 64, c.num_heads = 2;  // head dim 32: bf16 / f16 attention on tensor cores
  c.position = position;
  const int64_t b = 2, t = 64;
  Model ref(c, *cc, tp_cpu, b, t);
  Model dut(c, *gc, tp_gpu, b, t, ModelShard::whole(), precision_of(prec));
  ref.params().init(*cc, 7);
  // The same weights on the GPU (its compute copy rounded from them when half), and the CPU's made
  // equal to the rounded values, so only the arithmetic differs.
  const std::vector<float> w = read_f32(*cc, ref.params().flat_params());
  {
    DeviceBuffer f32(*gpu, w.size() * 4);
    const Tensor tmp = f32.tensor({int64_t(w.size())});
    gpu->upload(*gc, w.data(), tmp);
    gc->ops.cast(*gc, tmp, dut.params().flat_params());
    if (prec != Prec::F32) {
      gc->ops.cast(*gc, dut.params().flat_params(), tmp);
      std::vector<float> rounded(w.size());
      gpu->download(*gc, tmp, rounded.data());
      cpu->upload(*cc, rounded.data(), ref.params().flat_params());
    }
  }
  std::mt19937 rng(5);
  std::vector<int32_t> tokens(size_t(b * t)), targets(size_t(b * t));
  for (size_t i = 0; i < tokens.size(); ++i) {
    tokens[i] = int32_t(rng() % uint32_t(c.vocab_size));
    targets[i] = int32_t(rng() % uint32_t(c.vocab_size));
  }
  for (Model* m : {&ref, &dut}) {
    m->zero_grad();
    m->forward(tokens.data(), targets.data(), b, t);
    m->backward();
  }
  const double lr = ref.mean_loss(), lg = dut.mean_loss();
  // fp32: both fp32 to the last few bits (different summation orders). Half: the limits of the
  // CPU's bf16 model against its f32 model (tests/model/bf16_model_test.cpp, measured there: loss
  // 3e-6 to 9e-6 relative, gradient cosines at least 0.999993, relative differences up to 1.3e-3);
  // f16 carries 3 more mantissa bits than bf16.
  const double loss_tol = prec == Prec::F32 ? 1e-5 : 1e-4;
  EXPECT_NEAR(lg, lr, loss_tol * lr);
  const std::vector<float> gr = read_f32(*cc, ref.params().flat_grads());
  const std::vector<float> gg = read_f32(*gc, dut.params().flat_grads());
  ASSERT_EQ(gr.size(), gg.size());
  for (const ParamSpec& s : ref.params().specs()) {
    const auto [cosine, rel] = compare(gr, gg, s.offset, s.offset + s.shape.numel());
    EXPECT_GT(cosine, prec == Prec::F32 ? 0.999999 : 0.9999) << s.name;
    EXPECT_LT(rel, prec == Prec::F32 ? 1e-4 : 1e-2) << s.name;
  }
  // One AdamW step on each: the updated fp32 (master) weights.
  AdamWConfig ac;
  AdamW opt_ref(ref.params(), ac, *cc), opt_dut(dut.params(), ac, *gc);
  opt_ref.step(ref.params(), 1e-3);
  opt_dut.step(dut.params(), 1e-3);
  const std::vector<float> pr = read_f32(*cc, opt_ref.gather(ref.params()).master);
  const std::vector<float> pg = read_f32(*gc, opt_dut.gather(dut.params()).master);
  ASSERT_EQ(pr.size(), pg.size());
  const auto [cosine, rel] = compare(pr, pg, 0, int64_t(pr.size()));
  EXPECT_GT(cosine, 0.999999);
  // Adam's first step moves each weight by about lr whatever the gradient's size: weights whose
  // gradients differ in sign (near zero) differ by up to 2 lr.
  double worst = 0;
  for (size_t i = 0; i < pr.size(); ++i) worst = std::max(worst, double(std::fabs(pr[i] - pg[i])));
  EXPECT_LE(worst, 2.0001e-3);
}

INSTANTIATE_TEST_SUITE_P(
    Cuda, CudaParity,
    ::testing::Combine(::testing::Values(PositionType::Rope, PositionType::Alibi),
                       ::testing::Values(Prec::F32, Prec::BF16, Prec::F16)),
    [](const auto& info) {
      const Prec p = std::get<1>(info.param);
      return std::string(std::get<0>(info.param) == PositionType::Rope ? "rope" : "alibi") + "_" +
             (p == Prec::F32 ? "f32" : p == Prec::BF16 ? "bf16" : "f16");
    });

}  // namespace
}  // namespace cs
