#include "model/model.h"

#include <fmt/core.h>

#include "backend/host_copy.h"

namespace cs {

void Model::carve(TensorCarver& c, const ModelConfig& cfg, const ModelShard& shard, const Dims& mx,
                  const Precision& p, int64_t in_flight, Activations& a) {
  const DType act = p.activation;
  CS_CHECK(in_flight >= 1) << in_flight << " micro-batches in flight";
  const int64_t tp = shard.tp_size, n = mx.n(), ns = mx.ns(), d = cfg.hidden_size, layers = shard.num_layers(cfg);
  // Saved sets: one per layer that is not recomputed (per slot), and one shared by every
  // recomputed layer of every slot (backward rebuilds it from the layer's input, layer by layer).
  a.saved_index.assign(size_t(layers), -1);
  int64_t per_slot = 0;
  for (int64_t l = 0; l < layers; ++l)
    if (!recomputed(cfg, l)) a.saved_index[size_t(l)] = per_slot++;
  a.slots.assign(size_t(in_flight), Slot{});
  for (Slot& sl : a.slots) {
    sl.tokens = c.take({n}, DType::I32);
    sl.targets = c.take({n}, DType::I32);
    sl.segments = c.take({n}, DType::I32);
    sl.positions = c.take({n}, DType::I32);
    sl.res = c.take({layers + 1, ns, d}, act);
    for (int64_t i = 0; i < per_slot; ++i) sl.saved.push_back(LayerSaved::carve(c, mx, act, p.gemm_io));
    if (shard.has_head) {
      sl.lnf = c.take({n, d}, p.gemm_io);
      sl.rstdf = c.take({ns});
      sl.logits = c.take({n, mx.w.vocab});
      sl.lse = c.take({n});
    }
  }
  if (per_slot < layers) a.shared_set = LayerSaved::carve(c, mx, act, p.gemm_io);
  a.scratch = LayerScratch::carve(c, mx, act, p.gemm_io);
  a.dres = c.take({ns, d}, act);
  a.recompute_out = c.take({ns, d}, act);
  if (tp > 1) a.comm = c.take({n, d}, act);
  if (shard.has_head) {
    a.losses = c.take({n});
    a.target_logit = c.take({n});
    if (tp > 1) a.lse_parts = c.take({tp, n});
    a.loss_sum = c.take({1}, DType::F64);
  }
  a.slopes = c.take({cfg.position == PositionType::Alibi ? mx.w.heads : 0});
}

size_t Model::planned_activation_bytes(const ModelConfig& cfg, const ModelShard& shard, int64_t max_batch,
                                       int64_t max_seq, const Precision& precision, int64_t in_flight) {
  const bool sp = shard.sequence_parallel && shard.tp_size > 1;
  const Dims mx{max_batch, max_seq, Widths::of(cfg, shard), sp ? int64_t(shard.tp_size) : 1};
  TensorCarver measure;
  for (int v = 0; v < shard.chunks; ++v) {
    Activations a;
    carve(measure, cfg, shard.chunk(cfg, v), mx, precision, in_flight, a);
  }
  return measure.used();
}

Model::Model(const ModelConfig& cfg, Ctx& ctx, Group& tp_group, int64_t max_batch, int64_t max_seq,
             const ModelShard& shard, const Precision& precision, int64_t in_flight)
    : cfg_(cfg), ctx_(ctx), tp_(tp_group), max_batch_(max_batch), max_seq_(max_seq),
      params_(cfg, shard, ctx.backend, precision.param, precision.grad), widths_(Widths::of(cfg, shard)),
      n_layers_(shard.chunk_layers(cfg)), gemm_dtype_(precision.gemm_io), sp_(shard.sequence_parallel && shard.tp_size > 1) {
  cfg_.validate();
  CS_CHECK(tp_.size() == shard.tp_size && tp_.rank() == shard.tp_rank)
      << "a shard of TP rank " << shard.tp_rank << " of " << shard.tp_size << " in a group of " << tp_.size();
  const Dims mx{max_batch, max_seq, widths_, sp_ ? int64_t(shard.tp_size) : 1};
  // Measure with a null buffer, allocate once, carve again with the same calls.
  acts_.resize(size_t(shard.chunks));
  TensorCarver measure;
  for (int v = 0; v < shard.chunks; ++v)
    carve(measure, cfg_, shard.chunk(cfg_, v), mx, precision, in_flight, acts_[size_t(v)]);
  act_ = DeviceBuffer(ctx.backend, measure.used());
  TensorCarver carver(&act_);
  for (int v = 0; v < shard.chunks; ++v)
    carve(carver, cfg_, shard.chunk(cfg_, v), mx, precision, in_flight, acts_[size_t(v)]);
  a_ = &acts_[0];
  if (cfg.position == PositionType::Alibi) {  // this rank's heads' slopes
    std::vector<float> all(size_t(cfg.num_heads));
    alibi_slopes(cfg.num_heads, all.data());
    for (Activations& a : acts_) ctx.backend.upload(ctx, all.data() + shard.tp_rank * widths_.heads, a.slopes);
  }
}

Tensor Model::res(int64_t i, int64_t n) const {
  CS_CHECK(i >= 0 && i <= n_layers_) << "residual " << i;
  if (n < 0) n = slot().dims.ns();
  const int64_t d = cfg_.hidden_size;
  // Streams packed at the current rows: stream i starts i * N * D elements in.
  const Tensor& r = slot().res;
  return r.view({r.numel()}).slice_rows(i * n * d, (i + 1) * n * d).view({n, d});
}

Tensor Model::input(int64_t b, int64_t t, int64_t slot) {
  CS_CHECK(b >= 1 && b <= max_batch_ && t >= 1 && t <= max_seq_) << "input " << b << "x" << t;
  use_slot(slot);
  return res(0, Dims{b, t, widths_, sp_ ? tp_.size() : 1}.ns());
}
Tensor Model::output() const { return res(n_layers_); }
Tensor Model::output_grad() const { return prefix(a_->dres, {slot().dims.ns(), cfg_.hidden_size}); }
Tensor Model::logits() const { return prefix(slot().logits, {slot().dims.n(), widths_.vocab}); }

void Model::use_chunk(int64_t v) {
  CS_CHECK(v >= 0 && v < chunks()) << "model chunk " << v << " of " << chunks();
  chunk_ = v;
  a_ = &acts_[size_t(v)];
}

void Model::use_slot(int64_t s) {
  CS_CHECK(s >= 0 && s < int64_t(a_->slots.size())) << "activation slot " << s << " of " << a_->slots.size();
  cur_ = s;
}

void Model::check_tokens(const int32_t* ids, int64_t n, const char* what, int32_t lo) const {
  for (int64_t i = 0; i < n; ++i)
    if (ids[i] < lo || ids[i] >= cfg_.vocab_size)
      throw Error(fmt::format("[model] {} id {} at position {} is outside the vocabulary [0, {}). "
                              "Hint: the dataset was tokenized with a different tokenizer than "
                              "this model's (check --tokenizer-name-or-path and vocab_size)",
                              what, ids[i], i, cfg_.vocab_size));
}

LayerCtx Model::layer_ctx(const Slot& sl) const {
  LayerCtx c = layer_ctx(sl.dims);
  if (sl.has_segments) c.segments = prefix(sl.segments, {sl.dims.b, sl.dims.t});
  if (sl.has_positions) c.positions = prefix(sl.positions, {sl.dims.b, sl.dims.t});
  return c;
}

void Model::forward(const int32_t* tokens, const int32_t* targets, int64_t b, int64_t t, int64_t slot,
                    const int32_t* segments, const int32_t* positions) {
  CS_CHECK(b >= 1 && b <= max_batch_ && t >= 1 && t <= max_seq_)
      << "batch " << b << "x" << t << " exceeds the plan " << max_batch_ << "x" << max_seq_;
  const int64_t n = b * t;
  if (sp_ && n % tp_.size() != 0)
    throw Error(fmt::format("[model] sequence parallelism splits the {} x {} = {} rows of a micro-batch over {} "
                            "tensor-parallel ranks: expected a multiple of {}. Hint: a --seq-length divisible by "
                            "--tensor-model-parallel-size", b, t, n, tp_.size(), tp_.size()));
  use_slot(slot);
  Slot& sl = a_->slots[size_t(cur_)];
  sl.dims = {b, t, widths_, sp_ ? tp_.size() : 1};
  sl.has_segments = segments != nullptr;
  sl.has_positions = segments != nullptr || positions != nullptr;
  if (segments && !positions) {  // each token's position within its run of equal sample ids
    positions_host_.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i)
      positions_host_[size_t(i)] =
          i % t != 0 && segments[i] == segments[i - 1] ? positions_host_[size_t(i - 1)] + 1 : 0;
    positions = positions_host_.data();
  }
  if (segments) ctx_.backend.upload(ctx_, segments, prefix(sl.segments, {n}));
  if (positions) ctx_.backend.upload(ctx_, positions, prefix(sl.positions, {n}));
  const ModelWeights& w = params_.weights();
  const LayerCtx c = layer_ctx(sl);
  const int64_t base = chunk_ * n_layers_;  // the chunk's first local layer
  if (runs_embedding()) {  // vocab-parallel: each rank's rows of the lookup, summed over the group
    check_tokens(tokens, n, "token", 0);
    Tensor tok = prefix(sl.tokens, {n});
    ctx_.backend.upload(ctx_, tokens, tok);
    const Tensor partial = row_parallel_partial(c, res(0));
    ctx_.ops.embedding_forward(ctx_, tok, w.embed, widths_.vocab_offset, partial);
    reduce_row_parallel(c, partial, res(0));
  }
  for (int64_t l = 0; l < n_layers_; ++l)
    decoder_layer_forward(c, w.layers[size_t(base + l)], res(l), res(l + 1), saved(l).at(sl.dims));
  sl.count = 0;
  if (!runs_head()) return;
  check_tokens(targets, n, "target", -1);  // -1: an ignored position
  for (int64_t i = 0; i < n; ++i) sl.count += targets[i] >= 0;
  Tensor tgt = prefix(sl.targets, {n});
  ctx_.backend.upload(ctx_, targets, tgt);
  head_forward(c, w.norm, w.head, res(n_layers_), prefix(sl.lnf, {n, cfg_.hidden_size}),
               prefix(sl.rstdf, {sl.dims.ns()}), logits());
  // Vocab-parallel cross entropy: every rank's log-sum-exp over its columns, all-gathered, and the
  // target's logit from the rank that holds it, summed; every rank then has every loss.
  const Tensor lse = prefix(sl.lse, {n}), tl = prefix(a_->target_logit, {n});
  ctx_.ops.cross_entropy_forward(ctx_, logits(), tgt, widths_.vocab_offset, lse, tl);
  Tensor parts = lse.view({1, n});
  if (tp_.size() > 1) {
    parts = prefix(a_->lse_parts, {tp_.size(), n});
    tp_.all_gather(ctx_, lse, parts);
    tp_.all_reduce_sum(ctx_, tl);
  }
  ctx_.ops.cross_entropy_combine(ctx_, parts, tl, tgt, losses(), lse);
  ctx_.ops.sum(ctx_, losses(), a_->loss_sum);
}

double Model::mean_loss() const {
  CS_CHECK(runs_head()) << "mean_loss on a stage (or chunk) without the head";
  return slot().count ? read_f64(ctx_, a_->loss_sum)[0] / double(slot().count) : 0.0;
}

void Model::backward(float grad_scale, int64_t slot) {
  use_slot(slot);
  const Slot& sl = a_->slots[size_t(cur_)];
  const int64_t n = sl.dims.n(), d = cfg_.hidden_size;
  CS_CHECK(n > 0) << "backward before forward";
  const ModelShard& sh = params_.shard();
  const ModelWeights& w = params_.weights();
  const ModelWeights& g = params_.grads();
  const Tensor dres = output_grad();
  const LayerScratch k = a_->scratch.at(sl.dims);
  const LayerCtx c = layer_ctx(sl);
  const int64_t base = chunk_ * n_layers_;
  if (runs_head()) {
    if (grad_scale < 0) grad_scale = sl.count ? 1.f / float(sl.count) : 0.f;
    // The logits' gradient overwrites them (in the GEMM input dtype: bf16 under --bf16).
    const Tensor logits = this->logits(), lnf = prefix(sl.lnf, {n, d});
    const Tensor dlogits(logits.data, logits.shape, gemm_dtype_, logits.device);
    ctx_.ops.cross_entropy_backward(ctx_, logits, prefix(sl.lse, {n}), prefix(sl.targets, {n}), widths_.vocab_offset,
                                    grad_scale, dlogits);
    ctx_.ops.matmul(ctx_, dlogits, true, lnf, false, g.head, 1.f, head_grads_written_ ? 1.f : 0.f);  // dW_head (+)= dlogits^T lnf
    head_grads_written_ = true;
    ctx_.ops.matmul(ctx_, dlogits, false, w.head, false, k.dln, 1.f, 0.f);  // dlnf = dlogits W_head (partial)
    ctx_.ops.rmsnorm_backward(ctx_, res(n_layers_), w.norm, prefix(sl.rstdf, {sl.dims.ns()}),
                              column_parallel_input_grad(c, k.dln), dres, g.norm, false);
    if (grads_ready_) grads_ready_(kHeadLayer);
  }
  layer_grads_written_.resize(g.layers.size(), 0);
  for (int64_t l = n_layers_ - 1; l >= 0; --l) {
    const LayerSaved s = saved(l).at(sl.dims);
    if (recomputed(l))  // rebuild this block's activations from its saved input
      decoder_layer_forward(c, w.layers[size_t(base + l)], res(l), prefix(a_->recompute_out, {sl.dims.ns(), d}), s);
    LayerCtx cl = c;
    cl.weight_grad_beta = layer_grads_written_[size_t(base + l)] ? 1.f : 0.f;
    decoder_layer_backward(cl, w.layers[size_t(base + l)], g.layers[size_t(base + l)], s, res(l), dres, k);
    layer_grads_written_[size_t(base + l)] = 1;
    if (grads_ready_) grads_ready_(sh.layer_at(cfg_, int(base + l)));
  }
  if (runs_embedding()) {
    ctx_.ops.embedding_backward(ctx_, prefix(sl.tokens, {n}), widths_.vocab_offset, row_parallel_grad(c, dres),
                                g.embed);
    if (grads_ready_) grads_ready_(kEmbedLayer);
  }
}

void Model::zero_grad() {
  const ModelWeights& g = params_.grads();
  for (const LayerWeights& l : g.layers) {
    ctx_.backend.zero(ctx_, l.ln1);
    ctx_.backend.zero(ctx_, l.ln2);
  }
  if (g.norm.data) ctx_.backend.zero(ctx_, g.norm);  // (the shard's head and embedding, whichever chunk has them)
  if (g.embed.data) ctx_.backend.zero(ctx_, g.embed);
  layer_grads_written_.assign(g.layers.size(), 0);
  head_grads_written_ = false;
}

void Model::reduce_sequence_parallel_grads() {
  if (!sp_) return;
  for (const ParamSpec& s : params_.specs())
    if (s.split == TpSplit::None) tp_.all_reduce_sum(ctx_, params_.grad(s));
}

}  // namespace cs
