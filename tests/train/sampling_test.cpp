// Next-token choice at the edges: a temperature so small that logit / T overflows is greedy (it
// picked the least likely token), and a vocab shorter than the logits row never yields the rows
// beyond it (a model vocabulary padded past the tokenizer's).
#include <gtest/gtest.h>

#include <vector>

#include "train/sampling.h"

namespace cs {
namespace {

TEST(Sampling, TinyTemperatureIsGreedy) {
  // 3 / 1e-310 overflows to inf; inf - inf was NaN and every comparison with it false.
  const std::vector<float> pos = {1.0f, 3.0f, 2.5f, -1.0f, 2.9f}, neg = {-4.0f, -0.5f, -2.0f, -9.0f, -0.6f};
  for (double t : {1e-310, 4.9e-324, 1e-300, 1e-30}) {
    const SamplingParams p{t, 0, 1.0, 5};
    for (uint64_t s = 0; s < 20; ++s) {
      EXPECT_EQ(choose_token(pos.data(), 5, p, s), 1) << "T=" << t << " step " << s;
      EXPECT_EQ(choose_token(neg.data(), 5, p, s), 1) << "T=" << t << " step " << s;
    }
    const SamplingParams nucleus{t, 3, 0.5, 5};
    EXPECT_EQ(choose_token(pos.data(), 5, nucleus, 0), 1) << "T=" << t;
  }
}

TEST(Sampling, NeverChoosesBeyondTheVocab) {
  // Rows 3 and 4 hold the largest logits but lie beyond vocab 3 (padding rows).
  const std::vector<float> logits = {0.5f, 1.0f, 0.2f, 9.0f, 8.0f};
  EXPECT_EQ(choose_token(logits.data(), 3, SamplingParams{}, 0), 1);
  for (uint64_t s = 0; s < 100; ++s) {
    const int32_t t = choose_token(logits.data(), 3, SamplingParams{2.0, 0, 1.0, 9}, s);
    EXPECT_GE(t, 0);
    EXPECT_LT(t, 3);
  }
}

}  // namespace
}  // namespace cs
