#include "model/flops.h"

namespace cs {

double attention_flops(const ModelConfig& c, int64_t samples, int64_t seq) {
  return 3.0 * double(c.num_layers) * 4.0 * double(samples) * double(seq) * double(seq) * double(c.hidden_size);
}

double model_flops(const ModelConfig& c, int64_t samples, int64_t seq) {
  const double n = double(samples) * double(seq), d = double(c.hidden_size);
  const double f = double(c.ffn_hidden_size), v = double(c.vocab_size), l = double(c.num_layers);
  const double matmul = 2.0 * n * (l * (3 * d * d + d * d + 3 * d * f) + v * d);
  return 3.0 * matmul + attention_flops(c, samples, seq);
}

}  // namespace cs
