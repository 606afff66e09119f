// Generation: greedy decoding with the KV cache equals arg-max decoding with full recomputation
// (Model::forward on the whole sequence every step), token for token, for RoPE and ALiBi; the
// cache's logits equal the full forward's; sampling is reproducible for a seed.
#include <gtest/gtest.h>

#include <algorithm>

#include "backend/host_copy.h"
#include "device_env.h"
#include "model/decoder.h"
#include "train/sampling.h"

namespace cs {

// Test names print the position, not a byte dump.
void PrintTo(PositionType p, std::ostream* os) { *os << position_name(p); }

namespace {

class Greedy : public ::testing::TestWithParam<PositionType> {};

TEST_P(Greedy, KvCacheEqualsFullRecomputation) {
  ModelConfig c = model_preset("tiny");
  c.position = GetParam();
  c.max_seq_length = 24;
  c.init_std = 0.5;  // a random model with peaked logits, so arg-max is not a coin toss
  SingleGroup tp;
  test::DeviceEnv env;
  Model m(c, *env, tp, 1, 24);
  m.params().init(*env, 21);
  std::vector<int32_t> seq = {7, 42, 3, 99, 15};
  Decoder dec(m, 1, 24);
  std::vector<float> logits = read_f32(*env, dec.step(seq.data(), int64_t(seq.size())));
  std::vector<int32_t> cached, full;
  std::vector<int32_t> cur = seq;
  for (int i = 0; i < 12; ++i) {
    // Full recomputation: forward on everything, arg-max of the last position.
    std::vector<int32_t> tgt(cur.size(), -1);
    m.forward(cur.data(), tgt.data(), 1, int64_t(cur.size()));
    const std::vector<float> all = read_f32(*env, m.logits());
    const float* last = all.data() + (cur.size() - 1) * size_t(c.vocab_size);
    for (int64_t j = 0; j < c.vocab_size; ++j) ASSERT_NEAR(logits[size_t(j)], last[j], 1e-4) << "step " << i;
    const int32_t want = int32_t(std::max_element(last, last + c.vocab_size) - last);
    const int32_t got = choose_token(logits.data(), c.vocab_size, SamplingParams{}, uint64_t(i));
    EXPECT_EQ(got, want) << "step " << i;
    cur.push_back(want);
    logits = read_f32(*env, dec.step(&got, 1));
  }
  EXPECT_EQ(dec.length(), int64_t(seq.size()) + 12);
  EXPECT_THROW(dec.step(cur.data(), 24), Error);  // beyond the cache
}

INSTANTIATE_TEST_SUITE_P(Positions, Greedy, ::testing::Values(PositionType::Rope, PositionType::Alibi),
                         [](const auto& info) { return std::string(position_name(info.param)); });

TEST(Sampling, ReproducibleForASeedAndRespectsTopK) {
  std::vector<float> logits = {1.0f, 3.0f, 2.5f, -1.0f, 2.9f};
  SamplingParams p{0.9, 2, 1.0, 77};
  std::vector<int32_t> a, b;
  for (uint64_t s = 0; s < 50; ++s) {
    a.push_back(choose_token(logits.data(), 5, p, s));
    b.push_back(choose_token(logits.data(), 5, p, s));
  }
  EXPECT_EQ(a, b);
  for (int32_t t : a) EXPECT_TRUE(t == 1 || t == 4) << t;  // the two largest logits
  EXPECT_NE(std::count(a.begin(), a.end(), 1), 50);       // both occur
  p.seed = 78;
  std::vector<int32_t> c;
  for (uint64_t s = 0; s < 50; ++s) c.push_back(choose_token(logits.data(), 5, p, s));
  EXPECT_NE(a, c);
  p.top_k = 0;
  p.top_p = 0.3;  // nucleus: only the most likely token reaches 0.3
  for (uint64_t s = 0; s < 20; ++s) EXPECT_EQ(choose_token(logits.data(), 5, p, s), 1);
  EXPECT_EQ(choose_token(logits.data(), 5, SamplingParams{}, 0), 1);  // greedy
}

}  // namespace
}  // namespace cs
