#include "model/decoder.h"

#include <fmt/core.h>

namespace cs {

Decoder::Decoder(const Model& model, int64_t batch, int64_t max_len)
    : model_(model), batch_(batch), max_len_(max_len) {
  const ModelConfig& c = model.config();
  const ModelShard& sh = model.shard();
  CS_CHECK(sh.has_embedding && sh.has_head && sh.tp_size == 1) << "decoding needs the whole model";
  const Widths& w = model.widths();
  const Dims mx{batch, max_len, w};
  const int64_t n = mx.n(), d = c.hidden_size;
  const Shape cache{batch, w.heads, max_len, w.head_dim};
  auto plan = [&](TensorCarver& k) {
    caches_.clear();
    for (int64_t l = 0; l < sh.num_layers(c); ++l) {
      KvCache kv;
      kv.k = k.take(cache);
      kv.v = k.take(cache);
      caches_.push_back(kv);
    }
    saved_ = LayerSaved::carve(k, mx, DType::F32);
    tokens_ = k.take({n}, DType::I32);
    x_ = k.take({n, d});
    y_ = k.take({n, d});
    last_ = k.take({batch, d});
    lnf_ = k.take({batch, d});
    rstd_ = k.take({batch});
    logits_ = k.take({batch, w.vocab});
  };
  TensorCarver measure;
  plan(measure);
  mem_ = DeviceBuffer(model.ctx().backend, measure.used());
  TensorCarver carve(&mem_);
  plan(carve);
}

void Decoder::reset() {
  len_ = 0;
  for (KvCache& kv : caches_) kv.len = 0;
}

Tensor Decoder::step(const int32_t* tokens, int64_t t) {
  const ModelConfig& c = model_.config();
  if (t < 1 || len_ + t > max_len_)
    throw Error(fmt::format("[generate] {} positions exceed the cache of {} (--max-new-tokens plus the "
                            "prompt must fit the model's sequence length)", len_ + t, max_len_));
  for (int64_t i = 0; i < batch_ * t; ++i)
    if (tokens[i] < 0 || tokens[i] >= c.vocab_size)
      throw Error(fmt::format("[generate] token id {} is outside the vocabulary [0, {})", tokens[i], c.vocab_size));
  Ctx& ex = model_.ctx();
  const Dims dims{batch_, t, model_.widths()};
  const int64_t n = dims.n(), d = c.hidden_size;
  const ModelWeights& w = model_.params().weights();
  const LayerCtx lc = model_.layer_ctx(dims);
  const LayerSaved s = saved_.at(dims);
  Tensor tok = prefix(tokens_, {n}), x = prefix(x_, {n, d}), y = prefix(y_, {n, d});
  ex.backend.upload(ex, tokens, tok);
  ex.ops.embedding_forward(ex, tok, w.embed, 0, x);
  for (size_t l = 0; l < caches_.size(); ++l) {
    decoder_layer_forward(lc, w.layers[l], x, y, s, &caches_[l]);
    caches_[l].len += t;
    std::swap(x, y);
  }
  // Final norm and logits for the last new position of each sequence only.
  for (int64_t bi = 0; bi < batch_; ++bi)
    ex.backend.copy(ex, x.slice_rows(bi * t + t - 1, bi * t + t), last_.slice_rows(bi, bi + 1));
  head_forward(lc, w.norm, w.head, last_, lnf_, rstd_, logits_);
  len_ += t;
  return logits_;
}

}  // namespace cs
