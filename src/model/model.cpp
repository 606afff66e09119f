#include "model/model.h"

#include <fmt/core.h>

#include <cstring>

namespace cs {

Model::Model(const ModelConfig& cfg, const Ops& ops, Group& tp_group, int64_t max_batch,
             int64_t max_seq)
    : cfg_(cfg), ops_(ops), tp_(tp_group), max_batch_(max_batch), max_seq_(max_seq), params_(cfg) {
  cfg_.validate();
  CS_CHECK(tp_.size() == 1) << "tensor parallelism arrives with the parallelism issue";
  const Dims mx{max_batch, max_seq, cfg.hidden_size, cfg.num_heads, cfg.head_dim(),
                cfg.ffn_hidden_size, cfg.vocab_size};
  const int64_t n = mx.n(), d = cfg.hidden_size, l = cfg.num_layers;
  tokens_.resize(size_t(n) * 4);
  targets_.resize(size_t(n) * 4);
  res_.resize(size_t((l + 1) * n * d) * 4);
  const int64_t per = LayerSaved::floats(mx), sets = cfg.recompute ? 1 : l;
  saved_.resize(size_t(per * sets) * 4);
  for (int64_t i = 0; i < sets; ++i) saved_sets_.push_back(LayerSaved::carve(saved_.f32() + i * per, mx));
  const int64_t sc = LayerScratch::floats(mx);
  scratch_.resize(size_t(sc + 2 * n * d) * 4);
  scratch_set_ = LayerScratch::carve(scratch_.f32(), mx);
  dres_ = scratch_.f32() + sc;
  recompute_out_ = dres_ + n * d;
  lnf_.resize(size_t(n * d) * 4);
  rstdf_.resize(size_t(n) * 4);
  logits_.resize(size_t(n * cfg.vocab_size) * 4);
  losses_.resize(size_t(n) * 4);
  lse_.resize(size_t(n) * 4);
  if (cfg.position == PositionType::Alibi) {
    slopes_.resize(size_t(cfg.num_heads) * 4);
    alibi_slopes(cfg.num_heads, slopes_.f32());
    slopes_t_ = Tensor(slopes_.f32(), {cfg.num_heads});
  } else {
    slopes_t_ = Tensor(nullptr, {0});
  }
}

size_t Model::activation_bytes() const {
  return tokens_.bytes() + targets_.bytes() + res_.bytes() + saved_.bytes() + scratch_.bytes() +
         lnf_.bytes() + rstdf_.bytes() + logits_.bytes() + losses_.bytes() + lse_.bytes();
}

void Model::check_tokens(const int32_t* ids, int64_t n, const char* what, int32_t lo) const {
  for (int64_t i = 0; i < n; ++i)
    if (ids[i] < lo || ids[i] >= cfg_.vocab_size)
      throw Error(fmt::format("[model] {} id {} at position {} is outside the vocabulary [0, {}). "
                              "Hint: the dataset was tokenized with a different tokenizer than "
                              "this model's (check --tokenizer-name-or-path and vocab_size)",
                              what, ids[i], i, cfg_.vocab_size));
}

double Model::forward(const int32_t* tokens, const int32_t* targets, int64_t b, int64_t t) {
  CS_CHECK(b >= 1 && b <= max_batch_ && t >= 1 && t <= max_seq_)
      << "batch " << b << "x" << t << " exceeds the plan " << max_batch_ << "x" << max_seq_;
  dims_ = {b, t, cfg_.hidden_size, cfg_.num_heads, cfg_.head_dim(), cfg_.ffn_hidden_size,
           cfg_.vocab_size};
  const int64_t n = b * t, d = cfg_.hidden_size;
  check_tokens(tokens, n, "token", 0);
  check_tokens(targets, n, "target", -1);  // -1: an ignored position
  std::memcpy(tokens_.data(), tokens, size_t(n) * 4);
  std::memcpy(targets_.data(), targets, size_t(n) * 4);
  const ModelWeights& w = params_.weights();
  auto res = [&](int64_t i) { return Tensor(res_.f32() + i * n * d, {n, d}); };
  Tensor tok(tokens_.data(), {n}, DType::I32), tgt(targets_.data(), {n}, DType::I32);
  Tensor x0 = res(0);
  ops_.embedding_forward(tok, w.embed, x0);
  const LayerCtx c = layer_ctx();
  for (int64_t l = 0; l < cfg_.num_layers; ++l) {
    Tensor out = res(l + 1);
    decoder_layer_forward(c, w.layers[size_t(l)], res(l), out, saved_sets_[cfg_.recompute ? 0 : size_t(l)]);
  }
  Tensor lnf(lnf_.f32(), {n, d}), rstdf(rstdf_.f32(), {n}), logits = this->logits();
  ops_.rmsnorm_forward(res(cfg_.num_layers), w.norm, float(cfg_.rms_norm_eps), lnf, rstdf);
  ops_.matmul(lnf, false, w.head, true, logits, 1.f, 0.f);
  Tensor losses = this->losses(), lse(lse_.f32(), {n});
  ops_.cross_entropy_forward(logits, tgt, losses, lse);
  count_ = 0;
  for (int64_t i = 0; i < n; ++i) count_ += targets[i] >= 0;
  return count_ ? ops_.sum(losses) / double(count_) : 0.0;
}

void Model::backward(float grad_scale) {
  const int64_t n = dims_.n(), d = cfg_.hidden_size;
  CS_CHECK(n > 0) << "backward before forward";
  if (grad_scale < 0) grad_scale = count_ ? 1.f / float(count_) : 0.f;
  const ModelWeights& w = params_.weights();
  const ModelWeights& g = params_.grads();
  auto res = [&](int64_t i) { return Tensor(res_.f32() + i * n * d, {n, d}); };
  Tensor tok(tokens_.data(), {n}, DType::I32), tgt(targets_.data(), {n}, DType::I32);
  Tensor logits = this->logits(), lse(lse_.f32(), {n});
  ops_.cross_entropy_backward(logits, lse, tgt, grad_scale, logits);  // in place
  Tensor lnf(lnf_.f32(), {n, d}), dlnf(scratch_set_.dln, {n, d}), head_g = g.head, norm_g = g.norm;
  ops_.matmul(logits, true, lnf, false, head_g, 1.f, 1.f);  // dW_head += dlogits^T lnf
  ops_.matmul(logits, false, w.head, false, dlnf, 1.f, 0.f);  // dlnf = dlogits W_head
  Tensor dres(dres_, {n, d});
  ops_.rmsnorm_backward(res(cfg_.num_layers), w.norm, Tensor(rstdf_.f32(), {n}), dlnf, dres,
                        norm_g, false);
  const LayerCtx c = layer_ctx();
  for (int64_t l = cfg_.num_layers - 1; l >= 0; --l) {
    const LayerSaved& s = saved_sets_[cfg_.recompute ? 0 : size_t(l)];
    if (cfg_.recompute) {  // rebuild this block's activations from its saved input
      Tensor out(recompute_out_, {n, d});
      decoder_layer_forward(c, w.layers[size_t(l)], res(l), out, s);
    }
    decoder_layer_backward(c, w.layers[size_t(l)], g.layers[size_t(l)], s, res(l), dres, scratch_set_);
  }
  Tensor embed_g = g.embed;
  ops_.embedding_backward(tok, dres, embed_g);
}

void Model::zero_grad() {
  Tensor gflat = params_.flat_grads();
  ops_.zero(gflat);
}

}  // namespace cs
