// Decoder: inference with a KV cache over a trained Model's weights. Each layer keeps the keys and
// values of every position seen so far ((B, H, max_len, Hd) each); step() feeds new tokens (the
// whole prompt first, then one token at a time) and returns the logits of the last position.
// Same ops, same maths as Model::forward, so greedy decoding equals argmax of full recomputation.
#pragma once
#include <vector>

#include "model/model.h"

namespace cs {

class Decoder {
 public:
  Decoder(const Model& model, const Ops& ops, int64_t batch, int64_t max_len);
  // Forgets every position.
  void reset() { len_ = 0; }
  // tokens: (batch, t) at positions [length(), length() + t). Returns logits (batch, V) of the
  // last new position; a cs::Error when the cache would overflow or an id is outside the vocab.
  Tensor step(const int32_t* tokens, int64_t t);
  int64_t length() const { return len_; }
  int64_t capacity() const { return max_len_; }

 private:
  const Model& model_;
  const Ops& ops_;
  int64_t batch_, max_len_, len_ = 0;
  Buffer cache_, scratch_, slopes_;
  std::vector<Tensor> k_cache_, v_cache_;
};

}  // namespace cs
