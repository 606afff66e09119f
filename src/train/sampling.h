// Next-token choice for generation: greedy (temperature 0: the first arg-max), or sampling from
// softmax(logits / temperature) restricted to the top-k tokens and then to the smallest set whose
// probability reaches top-p (Holtzman et al. 2020). The uniform draw is Philox(seed, step), so a
// seed reproduces a sample exactly.
#pragma once
#include <cstdint>

namespace cs {

struct SamplingParams {
  double temperature = 0.0;
  int64_t top_k = 0;     // 0: no limit
  double top_p = 1.0;    // 1: no limit
  uint64_t seed = 1234;
};

// Chooses among ids [0, vocab): a vocab shorter than the logits row leaves out its last rows (a
// model vocabulary padded beyond the tokenizer's). Any temperature > 0 small enough that only the
// most likely token keeps a probability is greedy.
int32_t choose_token(const float* logits, int64_t vocab, const SamplingParams& p, uint64_t step);

}  // namespace cs
