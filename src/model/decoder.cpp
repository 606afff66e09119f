#include "model/decoder.h"

#include <fmt/core.h>

namespace cs {

namespace {
// Scratch layout for up to n rows.
struct Scratch {
  float *x, *ln, *qkv, *q, *k, *v, *att, *attm, *h, *gu, *act, *last, *lnl, *rstd, *logits;
};

int64_t scratch_floats(const ModelConfig& c, int64_t n, int64_t b) {
  const int64_t d = c.hidden_size, f = c.ffn_hidden_size;
  return n * (d * 9 + 3 * d + 3 * f) + n + b * (2 * d + 1 + c.vocab_size) + 64;
}

Scratch carve(float* p, const ModelConfig& c, int64_t n, int64_t b) {
  const int64_t d = c.hidden_size, f = c.ffn_hidden_size;
  Scratch s{};
  auto take = [&](int64_t k) { float* r = p; p += k; return r; };
  s.x = take(n * d); s.ln = take(n * d); s.qkv = take(n * 3 * d); s.q = take(n * d); s.k = take(n * d);
  s.v = take(n * d); s.att = take(n * d); s.attm = take(n * d); s.h = take(n * d);
  s.gu = take(n * 2 * f); s.act = take(n * f); s.rstd = take(n);
  s.last = take(b * d); s.lnl = take(b * d); s.logits = take(b * c.vocab_size);
  return s;
}
}  // namespace

Decoder::Decoder(const Model& model, const Ops& ops, int64_t batch, int64_t max_len)
    : model_(model), ops_(ops), batch_(batch), max_len_(max_len) {
  const ModelConfig& c = model.config();
  const int64_t per = batch * c.num_heads * max_len * c.head_dim();
  cache_.resize(size_t(2 * c.num_layers * per) * 4);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const Shape s{batch, c.num_heads, max_len, c.head_dim()};
    k_cache_.emplace_back(cache_.f32() + (2 * l) * per, s);
    v_cache_.emplace_back(cache_.f32() + (2 * l + 1) * per, s);
  }
  scratch_.resize(size_t(scratch_floats(c, batch * max_len, batch)) * 4);
  if (c.position == PositionType::Alibi) {
    slopes_.resize(size_t(c.num_heads) * 4);
    alibi_slopes(c.num_heads, slopes_.f32());
  }
}

Tensor Decoder::step(const int32_t* tokens, int64_t t) {
  const ModelConfig& c = model_.config();
  if (t < 1 || len_ + t > max_len_)
    throw Error(fmt::format("[generate] {} positions exceed the cache of {} (--max-new-tokens plus the "
                            "prompt must fit the model's sequence length)", len_ + t, max_len_));
  for (int64_t i = 0; i < batch_ * t; ++i)
    if (tokens[i] < 0 || tokens[i] >= c.vocab_size)
      throw Error(fmt::format("[generate] token id {} is outside the vocabulary [0, {})", tokens[i], c.vocab_size));
  const int64_t b = batch_, n = b * t, d = c.hidden_size, hh = c.num_heads, hd = c.head_dim();
  const int64_t f = c.ffn_hidden_size;
  const Scratch s = carve(scratch_.f32(), c, b * max_len_, b);
  const ModelWeights& w = model_.params().weights();
  const float eps = float(c.rms_norm_eps);
  Tensor slopes = c.position == PositionType::Alibi ? Tensor(slopes_.f32(), {hh}) : Tensor(nullptr, {0});
  Tensor tok(const_cast<int32_t*>(tokens), {n}, DType::I32);
  Tensor x(s.x, {n, d}), ln(s.ln, {n, d}), rstd(s.rstd, {n}), h(s.h, {n, d});
  ops_.embedding_forward(tok, w.embed, x);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const LayerWeights& lw = w.layers[size_t(l)];
    // Attention: the same steps as attention_block_forward, with keys and values from the cache.
    ops_.rmsnorm_forward(x, lw.ln1, eps, ln, rstd);
    Tensor qkv(s.qkv, {n, 3 * d}), qkv3(s.qkv, {b, t, 3 * d});
    ops_.matmul(ln, false, lw.wpack, true, qkv, 1.f, 0.f);
    Tensor q(s.q, {b, hh, t, hd}), k(s.k, {b, hh, t, hd}), v(s.v, {b, hh, t, hd});
    ops_.split_heads(qkv3, 0, q);
    ops_.split_heads(qkv3, d, k);
    ops_.split_heads(qkv3, 2 * d, v);
    if (c.position == PositionType::Rope) {
      ops_.rope_apply(q, float(c.rope_base), len_, false);
      ops_.rope_apply(k, float(c.rope_base), len_, false);
    }
    ops_.kv_append(k, k_cache_[size_t(l)], len_);
    ops_.kv_append(v, v_cache_[size_t(l)], len_);
    Tensor att(s.att, {b, hh, t, hd}), attm3(s.attm, {b, t, d});
    ops_.attention_decode(q, k_cache_[size_t(l)], v_cache_[size_t(l)], len_ + t, slopes, att);
    ops_.merge_heads(att, attm3, 0);
    ops_.matmul(Tensor(s.attm, {n, d}), false, lw.wo, true, h, 1.f, 0.f);
    ops_.add_inplace(h, x);
    // MLP, then the residual back into x for the next layer.
    ops_.rmsnorm_forward(h, lw.ln2, eps, ln, rstd);
    Tensor gu(s.gu, {n, 2 * f}), act(s.act, {n, f});
    ops_.matmul(ln, false, lw.wgu, true, gu, 1.f, 0.f);
    ops_.swiglu_forward(gu, act);
    ops_.matmul(act, false, lw.wdown, true, x, 1.f, 0.f);
    ops_.add_inplace(x, h);
  }
  // Final norm and logits for the last new position of each sequence only.
  for (int64_t bi = 0; bi < b; ++bi) {
    Tensor row(s.x + (bi * t + t - 1) * d, {d}), dst(s.last + bi * d, {d});
    ops_.copy(row, dst);
  }
  Tensor last(s.last, {b, d}), lnl(s.lnl, {b, d}), rl(s.rstd, {b}), logits(s.logits, {b, c.vocab_size});
  ops_.rmsnorm_forward(last, w.norm, eps, lnl, rl);
  ops_.matmul(lnl, false, w.head, true, logits, 1.f, 0.f);
  len_ += t;
  return logits;
}

}  // namespace cs
