// Decoder: inference with a KV cache over a trained Model's weights. Each layer keeps the keys and
// values of every position seen so far ((B, H, max_len, Hd) each, on the model's device); step()
// feeds new tokens (the whole prompt first, then one token at a time) and returns the logits of
// the last position. It runs the training forward itself (decoder_layer_forward with a cache,
// head_forward), so greedy decoding equals argmax of full recomputation.
#pragma once
#include <vector>

#include "model/model.h"

namespace cs {

class Decoder {
 public:
  Decoder(const Model& model, int64_t batch, int64_t max_len);
  // Forgets every position.
  void reset();
  // tokens: host (batch, t) at positions [length(), length() + t). Returns the logits (batch, V)
  // of the last new position, on the device; a cs::Error when the cache would overflow or an id
  // is outside the vocabulary.
  Tensor step(const int32_t* tokens, int64_t t);
  int64_t length() const { return len_; }
  int64_t capacity() const { return max_len_; }

 private:
  const Model& model_;
  int64_t batch_, max_len_, len_ = 0;
  DeviceBuffer mem_;
  std::vector<KvCache> caches_;
  LayerSaved saved_;  // one set for up to batch * max_len rows, reused by every layer
  Tensor tokens_, x_, y_, last_, lnf_, rstd_, logits_;
};

}  // namespace cs
