// The whole model against the PyTorch float64 reference of the Hugging Face Baichuan code
// (tools/reference/make_fixtures.py): logits, loss and every parameter gradient, for a RoPE
// (7B-style) and an ALiBi (13B-style, 3 heads: not a power of two) tiny config. Plus: full
// recomputation changes nothing, rows of a batch are independent, bad token ids are errors.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "backend/host_copy.h"
#include "checkpoint/safetensors.h"
#include "closeness.h"
#include "device_env.h"
#include "tolerances.h"
#include "train/hf_model.h"

namespace cs {
namespace {
using test::all_close;

const std::string kFixtures = std::string(CS_SOURCE_DIR) + "/tests/fixtures/model/";

std::vector<float> read_all(const SafetensorsFile& f, const std::string& name) {
  Tensor t = f.tensor(name);
  std::vector<float> v(size_t(t.numel()));
  f.read_f32(name, v.data(), t.numel());
  return v;
}

std::vector<int32_t> read_ids(const SafetensorsFile& f, const std::string& name) {
  Tensor t = f.tensor(name);
  const int32_t* p = static_cast<const int32_t*>(t.data);
  return {p, p + t.numel()};
}

class Parity : public ::testing::TestWithParam<std::string> {};

TEST_P(Parity, LogitsLossAndEveryGradientMatchPyTorch) {
  const std::string dir = kFixtures + GetParam();
  SafetensorsFile golden = SafetensorsFile::open(dir + "/golden.safetensors");
  auto tokens = read_ids(golden, "tokens"), targets = read_ids(golden, "targets");
  const Shape ts = golden.tensor("tokens").shape;
  SingleGroup tp;
  test::DeviceEnv env;
  auto model = load_hf_model(dir, *env, tp, ts[0], ts[1]);
  EXPECT_EQ(model->config().position, GetParam() == "alibi" ? PositionType::Alibi : PositionType::Rope);
  model->forward(tokens.data(), targets.data(), ts[0], ts[1]);
  const double loss = model->mean_loss();
  const auto want_logits = read_all(golden, "logits");
  const auto logits = read_f32(*env, model->logits());
  EXPECT_TRUE(all_close(logits.data(), want_logits.data(), int64_t(want_logits.size()),
                        tol::kModelAtol, 0, "logits"));
  EXPECT_NEAR(loss, read_all(golden, "loss")[0], tol::kModelAtol);
  model->zero_grad();
  model->backward();
  int checked = 0;
  for (const ParamSpec& s : model->params().specs()) {
    const auto want = read_all(golden, "grad." + s.name);
    const auto got = read_f32(*env, model->params().grad(s));
    ASSERT_EQ(want.size(), got.size()) << s.name;
    // 1e-4 relative, measured against the tensor's largest entry for near-zero elements.
    EXPECT_TRUE(all_close(got.data(), want.data(), int64_t(got.size()),
                          tol::kModelGradRtol * test::max_abs(want), tol::kModelGradRtol, s.name));
    ++checked;
  }
  EXPECT_EQ(checked, 3 + 7 * model->config().num_layers);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Parity, ::testing::Values("rope", "alibi"));

ModelConfig small_config(PositionType pos, bool recompute) {
  ModelConfig c = model_preset("tiny");
  c.position = pos;
  c.recompute = recompute;
  return c;
}

TEST(Model, FullRecomputationGivesIdenticalGradients) {
  for (PositionType pos : {PositionType::Rope, PositionType::Alibi}) {
    SingleGroup tp;
    test::DeviceEnv env;
    Model a(small_config(pos, false), *env, tp, 2, 9), b(small_config(pos, true), *env, tp, 2, 9);
    a.params().init(*env, 7);
    b.params().init(*env, 7);
    std::vector<int32_t> tok(18), tgt(18);
    for (int i = 0; i < 18; ++i) { tok[size_t(i)] = (i * 37) % 101; tgt[size_t(i)] = (i * 11 + 3) % 101; }
    a.forward(tok.data(), tgt.data(), 2, 9);
    b.forward(tok.data(), tgt.data(), 2, 9);
    EXPECT_EQ(a.mean_loss(), b.mean_loss());
    a.backward();
    b.backward();
    const auto ga = read_f32(*env, a.params().flat_grads()), gb = read_f32(*env, b.params().flat_grads());
    EXPECT_EQ(ga, gb);
    EXPECT_LT(b.activation_bytes(), a.activation_bytes());
  }
}

// zero_grad clears only what backward accumulates into (norm weights, the embedding); the weight
// matrices' gradients are overwritten by each layer's first backward after it (GEMM beta 0). So
// gradients poisoned with NaN before zero_grad must come out of one backward exactly as a fresh
// model's, and a second backward must add to them: every parameter is covered either way.
TEST(Model, ZeroGradThenBackwardOverwritesEveryGradient) {
  for (PositionType pos : {PositionType::Rope, PositionType::Alibi}) {
    SingleGroup tp;
    test::DeviceEnv env;
    Model a(small_config(pos, false), *env, tp, 2, 9), b(small_config(pos, false), *env, tp, 2, 9);
    a.params().init(*env, 7);
    b.params().init(*env, 7);
    std::vector<int32_t> tok(18), tgt(18);
    for (int i = 0; i < 18; ++i) { tok[size_t(i)] = (i * 29) % 101; tgt[size_t(i)] = (i * 13 + 5) % 101; }
    const Tensor ga = a.params().flat_grads();
    const std::vector<float> nan(size_t(ga.numel()), std::nanf(""));
    a.forward(tok.data(), tgt.data(), 2, 9);
    a.backward();  // this step's writes, then garbage
    env.backend->upload(*env, nan.data(), ga);
    a.zero_grad();
    a.forward(tok.data(), tgt.data(), 2, 9);
    a.backward();
    b.zero_grad();
    b.forward(tok.data(), tgt.data(), 2, 9);
    b.backward();
    const auto once = read_f32(*env, b.params().flat_grads());
    EXPECT_EQ(read_f32(*env, ga), once);
    // A second micro-batch accumulates (backward overwrites the logits with their gradient, so
    // each backward needs its forward): the same bits as the clean model's, about twice the first.
    for (Model* m : {&a, &b}) {
      m->forward(tok.data(), tgt.data(), 2, 9);
      m->backward();
    }
    const auto twice = read_f32(*env, b.params().flat_grads());
    EXPECT_EQ(read_f32(*env, ga), twice);
    std::vector<float> doubled(once);
    for (float& x : doubled) x *= 2.f;
    EXPECT_TRUE(all_close(twice, doubled, 1e-6 * test::max_abs(doubled), 1e-5, "twice the gradients"));
  }
}

// Megatron's --recompute-method block / AscendSpeed's --checkpoint-policy block: only the first N
// layers are recomputed; gradients are the same bits, memory between none and full.
TEST(Model, RecomputingTheFirstLayersOnlyGivesIdenticalGradients) {
  test::DeviceEnv env;
  SingleGroup tp;
  ModelConfig c = small_config(PositionType::Alibi, false);
  c.num_layers = 4;
  ModelConfig block = c, full = c;
  block.recompute = full.recompute = true;
  block.recompute_num_layers = 2;
  Model none_m(c, *env, tp, 2, 9), block_m(block, *env, tp, 2, 9), full_m(full, *env, tp, 2, 9);
  std::vector<int32_t> tok(18), tgt(18);
  for (int i = 0; i < 18; ++i) { tok[size_t(i)] = (i * 29) % 101; tgt[size_t(i)] = (i * 13 + 5) % 101; }
  std::vector<std::vector<float>> grads;
  for (Model* m : {&none_m, &block_m, &full_m}) {
    m->params().init(*env, 8);
    m->forward(tok.data(), tgt.data(), 2, 9);
    m->backward();
    grads.push_back(read_f32(*env, m->params().flat_grads()));
  }
  EXPECT_EQ(grads[1], grads[0]);
  EXPECT_EQ(grads[2], grads[0]);
  EXPECT_LT(full_m.activation_bytes(), block_m.activation_bytes());
  EXPECT_LT(block_m.activation_bytes(), none_m.activation_bytes());
}

TEST(Model, BatchRowsAreIndependentAndShorterSequencesReuseThePlan) {
  SingleGroup tp;
  test::DeviceEnv env;
  Model m(small_config(PositionType::Alibi, false), *env, tp, 2, 12);
  m.params().init(*env, 3);
  std::vector<int32_t> tok = {5, 9, 1, 77, 3, 2, 8, 40, 41, 42, 0, 100, 6, 6};
  std::vector<int32_t> tgt(tok.begin() + 1, tok.end());
  tgt.push_back(4);
  m.forward(tok.data(), tgt.data(), 2, 7);
  const std::vector<float> both = read_f32(*env, m.losses());
  m.forward(tok.data() + 7, tgt.data() + 7, 1, 7);
  std::vector<float> got = read_f32(*env, m.losses());
  for (int i = 0; i < 7; ++i) EXPECT_NEAR(got[size_t(i)], both[size_t(7 + i)], 1e-6);
  m.forward(tok.data(), tgt.data(), 1, 3);  // a prefix: causal, so the same first 3 losses
  got = read_f32(*env, m.losses());
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(got[size_t(i)], both[size_t(i)], 1e-6);
}

TEST(Model, TokenOutsideVocabularyIsAClearError) {
  SingleGroup tp;
  test::DeviceEnv env;
  Model m(small_config(PositionType::Rope, false), *env, tp, 1, 4);
  std::vector<int32_t> tok = {1, 2, 101, 3}, tgt = {2, 3, 4, 5};
  try {
    m.forward(tok.data(), tgt.data(), 1, 4);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("token id 101 at position 2"), std::string::npos) << e.what();
  }
}

TEST(Model, InitIsDeterministicPerNameAndSeed) {
  SingleGroup tp;
  test::DeviceEnv env;
  ModelConfig c = small_config(PositionType::Rope, false);
  Model a(c, *env, tp, 1, 1), b(c, *env, tp, 1, 1), d(c, *env, tp, 1, 1);
  a.params().init(*env, 11);
  b.params().init(*env, 11);
  d.params().init(*env, 12);
  const auto pa = read_f32(*env, a.params().flat_params()), pb = read_f32(*env, b.params().flat_params());
  EXPECT_EQ(pa, pb);
  EXPECT_NE(pa, read_f32(*env, d.params().flat_params()));
  const ParamSpec* norm = a.params().find("model.norm.weight");
  ASSERT_NE(norm, nullptr);
  EXPECT_EQ(read_f32(*env, a.params().param(*norm))[0], 1.f);
}

}  // namespace
}  // namespace cs

#include "model/flops.h"
namespace cs {
namespace {
// Megatron's published count for GPT (two D x 4D MLP matrices): 72 B s L h^2 (1 + s/6h + V/12hL).
// Ours has three D x F MLP matrices (SwiGLU): 6 D F = 24 D^2 per token-layer when F = 4D,
// i.e. 3 D F = 12 D^2 instead of GPT's 8 D^2; the difference is added explicitly.
TEST(Flops, EqualsMegatronsFormulaForAGptShapedConfig) {
  ModelConfig c = model_preset("tiny");
  c.hidden_size = 1024; c.ffn_hidden_size = 4096; c.num_layers = 24; c.vocab_size = 50304;
  const double b = 8, s = 2048, h = 1024, l = 24, v = 50304, f = 4096;
  const double megatron = 72 * b * s * l * h * h * (1 + s / (6 * h) + v / (12 * h * l));
  const double swiglu_extra = 3 * 2 * b * s * l * (3 * h * f - 8 * h * h);
  EXPECT_NEAR(model_flops(c, 8, 2048), megatron + swiglu_extra, 1e-9 * megatron);
  // Megatron's s / 6h term is attention's (q k^T and p v over the full s x s).
  EXPECT_NEAR(attention_flops(c, 8, 2048), 72 * b * s * l * h * h * s / (6 * h), 1e-9 * megatron);
}
}  // namespace
}  // namespace cs
