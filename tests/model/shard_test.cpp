// Model shards: a pipeline stage holding a range of layers (with or without the embedding and the
// head) computes exactly what the whole model computes for those layers, the stages exchanging
// activations and their gradients through a Group's send/recv; tensor-parallel widths give each
// rank its slice of every parameter (its heads' q, k, v rows of W_pack); parameters are found by
// (kind, layer); the gradient-ready callback fires once per layer, in backward order, when that
// layer's gradients are final.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "backend/host_copy.h"
#include "device_env.h"
#include "model/model.h"

namespace cs {

// Test names print the position, not a byte dump.
void PrintTo(PositionType p, std::ostream* os) { *os << position_name(p); }

namespace {

ModelConfig four_layers(PositionType pos) {
  ModelConfig c = model_preset("tiny");
  c.num_layers = 4;
  c.position = pos;
  c.vocab_size = 102;  // divisible by 2 for the TP widths test
  return c;
}

std::vector<int32_t> ids(int64_t n, int mul, int add, int vocab) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = int32_t((i * mul + add) % vocab);
  return v;
}

TEST(ParamStore, StageHoldsItsLayersOnlyAndFindsByKindAndLayer) {
  const ModelConfig c = four_layers(PositionType::Rope);
  test::DeviceEnv env;
  ParamStore last(c, ModelShard::stage(c, 1, 2), env.ctx->backend);
  EXPECT_EQ(last.find(ParamKind::Embed), nullptr);
  ASSERT_NE(last.find(ParamKind::Head), nullptr);
  EXPECT_EQ(last.find(ParamKind::Wpack, 1), nullptr);
  const ParamSpec* w3 = last.find(ParamKind::Wpack, 3);
  ASSERT_NE(w3, nullptr);
  EXPECT_EQ(w3->name, "model.layers.3.self_attn.W_pack.weight");
  EXPECT_EQ(last.weights().layers.size(), 2u);
  EXPECT_EQ(last.weights().embed.data, nullptr);
  int64_t next = 0;
  for (const ParamSpec& s : last.specs()) {  // one flat, gap-free range
    EXPECT_EQ(s.offset, next) << s.name;
    next += s.shape.numel();
    EXPECT_TRUE(s.layer == 2 || s.layer == 3 || s.layer == kHeadLayer) << s.name;
  }
  EXPECT_EQ(next, last.numel());
  EXPECT_EQ(last.layer_specs(2).size(), 7u);
  ParamStore first(c, ModelShard::stage(c, 0, 2), env.ctx->backend);
  EXPECT_EQ(first.numel() + last.numel(), int64_t(c.num_params()));
  EXPECT_THROW(ParamStore(c, ModelShard{3, 2}, env.ctx->backend), UsageError);  // an empty range backwards
}

// Interleaved: PP2 with 2 chunks of 1 layer: rank 0 holds layers 0 and 2 (chunk 0 with the
// embedding), rank 1 layers 1 and 3 (chunk 1 with the head); one flat store per rank, chunk by chunk.
TEST(ParamStore, InterleavedStageHoldsItsChunksLayers) {
  const ModelConfig c = four_layers(PositionType::Rope);
  test::DeviceEnv env;
  const ModelShard s0 = ModelShard::stage(c, 0, 2, 0, 1, 2), s1 = ModelShard::stage(c, 1, 2, 0, 1, 2);
  EXPECT_EQ(s0.num_layers(c), 2);
  EXPECT_EQ(s0.layer_at(c, 1), 2);
  EXPECT_EQ(s1.layer_at(c, 0), 1);
  EXPECT_EQ(s1.layer_at(c, 1), 3);
  EXPECT_TRUE(s0.chunk(c, 0).has_embedding && !s0.chunk(c, 1).has_embedding);
  EXPECT_TRUE(s1.chunk(c, 1).has_head && !s1.chunk(c, 0).has_head);
  ParamStore first(c, s0, env.ctx->backend), last(c, s1, env.ctx->backend);
  ASSERT_NE(first.find(ParamKind::Wpack, 2), nullptr);
  EXPECT_EQ(first.find(ParamKind::Wpack, 1), nullptr);
  EXPECT_NE(first.find(ParamKind::Embed), nullptr);
  EXPECT_EQ(first.find(ParamKind::Head), nullptr);
  ASSERT_NE(last.find(ParamKind::Wpack, 3), nullptr);
  EXPECT_NE(last.find(ParamKind::Head), nullptr);
  EXPECT_EQ(first.weights().layers.size(), 2u);
  EXPECT_EQ(first.weights().layers[1].wpack.data, first.param(*first.find(ParamKind::Wpack, 2)).data);
  EXPECT_EQ(first.numel() + last.numel(), int64_t(c.num_params()));
  EXPECT_EQ(first.layer_range(2).second - first.layer_range(2).first, first.layer_range(0).second - first.layer_range(0).first);
}

TEST(ParamStore, TensorParallelWidthsAndSlices) {
  ModelConfig c = four_layers(PositionType::Alibi);
  c.num_heads = 4;
  c.hidden_size = 48;  // head dim 12
  test::DeviceEnv env;
  const ModelShard r1{0, -1, true, true, 1, 2};
  ParamStore whole(c, ModelShard::whole(), env.ctx->backend), rank1(c, r1, env.ctx->backend);
  whole.init(*env, 5);
  rank1.init(*env, 5);
  const Widths w = Widths::of(c, r1);
  EXPECT_EQ(w.heads, 2);
  EXPECT_EQ(w.attention(), 24);
  EXPECT_EQ(w.ffn, c.ffn_hidden_size / 2);
  EXPECT_EQ(w.vocab, 51);
  EXPECT_EQ(w.vocab_offset, 51);
  const int64_t d = c.hidden_size;
  const ParamSpec* wp = rank1.find(ParamKind::Wpack, 2);
  ASSERT_EQ(wp->shape, (Shape{3 * 24, d}));
  EXPECT_EQ(wp->global_shape, (Shape{3 * d, d}));
  const auto got = read_f32(*env, rank1.param(*wp));
  const auto all = read_f32(*env, whole.param(*whole.find(ParamKind::Wpack, 2)));
  // Rank 1's rows: q rows [24, 48), k rows [48 + 24, 96), v rows [96 + 24, 144) of W_pack.
  for (int64_t blk = 0; blk < 3; ++blk)
    for (int64_t r = 0; r < 24; ++r)
      for (int64_t col = 0; col < d; ++col)
        ASSERT_EQ(got[size_t((blk * 24 + r) * d + col)], all[size_t((blk * d + 24 + r) * d + col)])
            << "block " << blk << " row " << r;
  const ParamSpec* wo = rank1.find(ParamKind::Wo, 2);  // row-parallel: columns [24, 48)
  ASSERT_EQ(wo->shape, (Shape{d, 24}));
  const auto wo_got = read_f32(*env, rank1.param(*wo));
  const auto wo_all = read_f32(*env, whole.param(*whole.find(ParamKind::Wo, 2)));
  for (int64_t r = 0; r < d; ++r)
    for (int64_t col = 0; col < 24; ++col) ASSERT_EQ(wo_got[size_t(r * 24 + col)], wo_all[size_t(r * d + 24 + col)]);
  const ParamSpec* emb = rank1.find(ParamKind::Embed);  // vocab-parallel: rows [51, 102)
  const auto e_got = read_f32(*env, rank1.param(*emb));
  const auto e_all = read_f32(*env, whole.param(*whole.find(ParamKind::Embed)));
  EXPECT_TRUE(std::equal(e_got.begin(), e_got.end(), e_all.begin() + 51 * d));
  ModelConfig odd = c;
  odd.num_heads = 3;
  odd.hidden_size = 48;
  EXPECT_THROW(ParamStore(odd, r1, env.ctx->backend), UsageError);  // TP 2 does not divide 3 heads
}

class TwoStages : public ::testing::TestWithParam<PositionType> {};

TEST_P(TwoStages, PipelineOfTwoStagesEqualsTheWholeModel) {
  const ModelConfig c = four_layers(GetParam());
  test::DeviceEnv env;
  SingleGroup tp("tp"), pp("pp");
  const int64_t b = 2, t = 9;
  Model whole(c, *env, tp, b, t), first(c, *env, tp, b, t, ModelShard::stage(c, 0, 2)),
      last(c, *env, tp, b, t, ModelShard::stage(c, 1, 2));
  for (Model* m : {&whole, &first, &last}) m->params().init(*env, 17);  // the same weights, by name
  const auto tok = ids(b * t, 37, 5, 101), tgt = ids(b * t, 11, 3, 101);

  whole.forward(tok.data(), tgt.data(), b, t);
  whole.backward();
  first.forward(tok.data(), nullptr, b, t);
  pp.send(*env, first.output(), 0);  // stage 0 -> stage 1 (one process: rank 0 to itself)
  pp.recv(*env, last.input(b, t), 0);
  last.forward(nullptr, tgt.data(), b, t);
  EXPECT_EQ(last.mean_loss(), whole.mean_loss());
  last.backward();
  pp.send(*env, last.input_grad(), 0);
  pp.recv(*env, first.output_grad(), 0);
  first.backward();

  int compared = 0;
  for (Model* stage : {&first, &last})
    for (const ParamSpec& s : stage->params().specs()) {
      const ParamSpec* ws = whole.params().find(s.name);
      ASSERT_NE(ws, nullptr) << s.name;
      EXPECT_EQ(read_f32(*env, stage->params().grad(s)), read_f32(*env, whole.params().grad(*ws))) << s.name;
      ++compared;
    }
  EXPECT_EQ(compared, 3 + 7 * 4);
}

INSTANTIATE_TEST_SUITE_P(Positions, TwoStages, ::testing::Values(PositionType::Rope, PositionType::Alibi),
                         [](const auto& info) { return info.param == PositionType::Rope ? "rope" : "alibi"; });

TEST(Model, GradientsReadyCallbackFiresPerLayerInBackwardOrderWithFinalGradients) {
  const ModelConfig c = four_layers(PositionType::Rope);
  test::DeviceEnv env;
  SingleGroup tp("tp");
  Model m(c, *env, tp, 1, 8);
  m.params().init(*env, 3);
  std::vector<int> order;
  std::vector<std::vector<float>> at_callback;
  auto layer_grads = [&](int layer) {
    std::vector<float> all;
    for (const ParamSpec* s : m.params().layer_specs(layer)) {
      const auto g = read_f32(*env, m.params().grad(*s));
      all.insert(all.end(), g.begin(), g.end());
    }
    return all;
  };
  m.on_grads_ready([&](int layer) {
    order.push_back(layer);
    at_callback.push_back(layer_grads(layer));
  });
  const auto tok = ids(8, 7, 1, 101), tgt = ids(8, 5, 2, 101);
  m.forward(tok.data(), tgt.data(), 1, 8);
  m.backward();
  EXPECT_EQ(order, (std::vector<int>{kHeadLayer, 3, 2, 1, 0, kEmbedLayer}));
  for (size_t i = 0; i < order.size(); ++i) EXPECT_EQ(at_callback[i], layer_grads(order[i])) << "layer " << order[i];
}

}  // namespace
}  // namespace cs
