#include "model/params.h"

#include <fmt/core.h>

#include <cmath>
#include <cstring>

#include "backend/host_copy.h"
#include "core/half.h"
#include "core/philox.h"
#include "parallel/grid.h"

namespace cs {

ModelShard ModelShard::stage(const ModelConfig& cfg, int stage, int stages, int tp_rank, int tp, int chunks) {
  CS_CHECK(stages >= 1 && chunks >= 1 && stage >= 0 && stage < stages && cfg.num_layers % (stages * chunks) == 0)
      << "stage " << stage << " of " << stages << " x " << chunks << " chunks over " << cfg.num_layers << " layers";
  const int per = int(cfg.num_layers) / (stages * chunks);
  return {stage * per, (stage + 1) * per, stage == 0, stage == stages - 1, tp_rank, tp, false, stage, stages, chunks};
}

ModelShard ModelShard::chunk(const ModelConfig& cfg, int v) const {
  CS_CHECK(v >= 0 && v < chunks) << "chunk " << v << " of " << chunks;
  ModelShard c = *this;
  const int shift = v * pp_size * chunk_layers(cfg);
  c.first_layer = first_layer + shift;
  c.end_layer = end(cfg) + shift;
  c.has_embedding = has_embedding && v == 0;
  c.has_head = has_head && v == chunks - 1;
  c.chunks = 1;
  return c;
}

void ModelShard::validate(const ModelConfig& cfg) const {
  const int e = end(cfg);
  if (chunks < 1 || (chunks > 1 && e - first_layer < 1) ||
      (chunks > 1 && layer_at(cfg, num_layers(cfg) - 1) >= cfg.num_layers))
    throw UsageError(fmt::format("[model] {} chunks of layers [{}, {}) do not fit the model's {} layers", chunks,
                                 first_layer, e, cfg.num_layers));
  if (first_layer < 0 || e > cfg.num_layers || first_layer > e)
    throw UsageError(fmt::format("[model] layers [{}, {}) are not a range of the model's {} layers", first_layer, e,
                                 cfg.num_layers));
  if (tp_size < 1 || tp_rank < 0 || tp_rank >= tp_size)
    throw UsageError(fmt::format("[model] tensor-parallel rank {} of {}: expected 0 <= rank < size", tp_rank, tp_size));
  // A shard holds any layer range, so only the tensor-parallel split is checked here.
  check_model_split(tp_size, 1, cfg.num_heads, cfg.ffn_hidden_size, cfg.vocab_size, cfg.num_layers);
}

Widths Widths::of(const ModelConfig& cfg, const ModelShard& shard) {
  const int64_t tp = shard.tp_size;
  Widths w;
  w.d = cfg.hidden_size;
  w.heads = cfg.num_heads / tp;
  w.head_dim = cfg.head_dim();
  w.ffn = cfg.ffn_hidden_size / tp;
  w.vocab = cfg.vocab_size / tp;
  w.vocab_offset = w.vocab * shard.tp_rank;
  return w;
}

namespace {
// Appends the specs of `shard` (all of them for the whole model) with local shapes.
std::vector<ParamSpec> make_specs(const ModelConfig& cfg, const ModelShard& shard) {
  std::vector<ParamSpec> specs;
  int64_t numel = 0;
  const Widths w = Widths::of(cfg, shard);
  const int64_t d = cfg.hidden_size, f = cfg.ffn_hidden_size, v = cfg.vocab_size, att = w.attention();
  const double std = cfg.init_std;
  // Megatron's scaled init for the two projections that feed the residual stream: std / sqrt(2L).
  const double out_std = cfg.init_std / std::sqrt(2.0 * double(cfg.num_layers));
  auto add = [&](std::string name, ParamKind kind, Shape local, Shape global, TpSplit split, int layer, bool norm,
                 double init) {
    specs.push_back({std::move(name), local, numel, split, layer, norm, init, kind, global});
    numel += local.numel();
  };
  if (shard.has_embedding)
    add("model.embed_tokens.weight", ParamKind::Embed, {w.vocab, d}, {v, d}, TpSplit::Vocab, kEmbedLayer, false, std);
  for (int l = 0; l < shard.num_layers(cfg); ++l) {
    const int i = shard.layer_at(cfg, l);
    const std::string p = "model.layers." + std::to_string(i) + ".";
    add(p + "input_layernorm.weight", ParamKind::InputNorm, {d}, {d}, TpSplit::None, i, true, 0);
    add(p + "self_attn.W_pack.weight", ParamKind::Wpack, {3 * att, d}, {3 * d, d}, TpSplit::ColumnQkvHeads, i, false,
        std);
    add(p + "self_attn.o_proj.weight", ParamKind::Wo, {d, att}, {d, d}, TpSplit::Row, i, false, out_std);
    add(p + "post_attention_layernorm.weight", ParamKind::PostNorm, {d}, {d}, TpSplit::None, i, true, 0);
    add(p + "mlp.gate_proj.weight", ParamKind::Gate, {w.ffn, d}, {f, d}, TpSplit::Column, i, false, std);
    add(p + "mlp.up_proj.weight", ParamKind::Up, {w.ffn, d}, {f, d}, TpSplit::Column, i, false, std);
    add(p + "mlp.down_proj.weight", ParamKind::Down, {d, w.ffn}, {d, f}, TpSplit::Row, i, false, out_std);
  }
  if (shard.has_head) {
    add("model.norm.weight", ParamKind::FinalNorm, {d}, {d}, TpSplit::None, kHeadLayer, true, 0);
    add("lm_head.weight", ParamKind::Head, {w.vocab, d}, {v, d}, TpSplit::Vocab, kHeadLayer, false, std);
  }
  return specs;
}

}  // namespace

void take_shard_slice(const ParamSpec& s, const ModelShard& sh, int64_t d_model, const float* g, float* out) {
  const int64_t rows = s.shape[0], cols = s.shape.ndim > 1 ? s.shape[1] : 1;
  const int64_t gcols = s.global_shape.ndim > 1 ? s.global_shape[1] : 1;
  auto copy_rows = [&](int64_t src_row, int64_t dst_row, int64_t n) {
    std::memcpy(out + dst_row * cols, g + src_row * gcols, size_t(n * cols) * sizeof(float));
  };
  switch (s.split) {
    case TpSplit::None: copy_rows(0, 0, rows); break;
    case TpSplit::Column:
    case TpSplit::Vocab: copy_rows(sh.tp_rank * rows, 0, rows); break;
    case TpSplit::Row:
      for (int64_t r = 0; r < rows; ++r)
        std::memcpy(out + r * cols, g + r * gcols + sh.tp_rank * cols, size_t(cols) * sizeof(float));
      break;
    case TpSplit::ColumnQkvHeads: {  // the rank's q rows, k rows and v rows
      const int64_t per = rows / 3;
      for (int64_t blk = 0; blk < 3; ++blk) copy_rows(blk * d_model + sh.tp_rank * per, blk * per, per);
      break;
    }
  }
}

std::vector<ParamSpec> param_specs(const ModelConfig& cfg) { return make_specs(cfg, ModelShard::whole()); }

std::vector<ParamSpec> param_specs(const ModelConfig& cfg, const ModelShard& shard) {
  shard.validate(cfg);
  return make_specs(cfg, shard);
}

ParamStore::ParamStore(const ModelConfig& cfg, const ModelShard& shard, Backend& backend, DType param_dtype,
                       DType grad_dtype)
    : cfg_(cfg), shard_(shard), specs_(param_specs(cfg, shard)), param_dtype_(param_dtype), grad_dtype_(grad_dtype) {
  numel_ = padded_ = specs_.empty() ? 0 : specs_.back().offset + specs_.back().shape.numel();
  params_ = DeviceBuffer(backend, size_t(numel_) * dtype_size(param_dtype));
  grads_ = DeviceBuffer(backend, size_t(numel_) * dtype_size(grad_dtype));
  w_ = views(params_, param_dtype);
  g_ = views(grads_, grad_dtype);
}

void ParamStore::pad_to(Ctx& ctx, int64_t multiple) {
  CS_CHECK(multiple >= 1) << multiple;
  const int64_t padded = (numel_ + multiple - 1) / multiple * multiple;
  if (padded == padded_) return;
  DeviceBuffer p(ctx.backend, size_t(padded) * dtype_size(param_dtype_));
  DeviceBuffer g(ctx.backend, size_t(padded) * dtype_size(grad_dtype_));
  ctx.backend.copy(ctx, flat_params(), p.tensor({numel_}, param_dtype_));
  ctx.backend.copy(ctx, flat_grads(), g.tensor({numel_}, grad_dtype_));
  params_ = std::move(p);
  grads_ = std::move(g);
  padded_ = padded;
  w_ = views(params_, param_dtype_);
  g_ = views(grads_, grad_dtype_);
}

ModelWeights ParamStore::views(const DeviceBuffer& b, DType t) const {
  auto at = [&](ParamKind k, int layer) {
    const ParamSpec* s = find(k, layer);
    return s ? b.tensor(s->shape, t, bytes_at(*s, t)) : Tensor();
  };
  ModelWeights m;
  m.embed = at(ParamKind::Embed, kEmbedLayer);
  for (int local = 0; local < shard_.num_layers(cfg_); ++local) {
    const int l = shard_.layer_at(cfg_, local);
    LayerWeights lw{at(ParamKind::InputNorm, l), at(ParamKind::Wpack, l), at(ParamKind::Wo, l),
                    at(ParamKind::PostNorm, l), Tensor(), at(ParamKind::Down, l)};
    const ParamSpec* gate = find(ParamKind::Gate, l);
    const ParamSpec* up = find(ParamKind::Up, l);
    CS_CHECK(up->offset == gate->offset + gate->shape.numel()) << "gate_proj and up_proj must be adjacent";
    lw.wgu = b.tensor({2 * gate->shape[0], gate->shape[1]}, t, bytes_at(*gate, t));
    m.layers.push_back(lw);
  }
  m.norm = at(ParamKind::FinalNorm, kHeadLayer);
  m.head = at(ParamKind::Head, kHeadLayer);
  return m;
}

const ParamSpec* ParamStore::find(const std::string& name) const {
  for (const auto& s : specs_)
    if (s.name == name) return &s;
  return nullptr;
}

const ParamSpec* ParamStore::find(ParamKind kind, int layer) const {
  const bool outside = kind == ParamKind::Embed || kind == ParamKind::FinalNorm || kind == ParamKind::Head;
  for (const auto& s : specs_)
    if (s.kind == kind && (outside || s.layer == layer)) return &s;
  return nullptr;
}

std::vector<const ParamSpec*> ParamStore::layer_specs(int layer) const {
  std::vector<const ParamSpec*> out;
  for (const auto& s : specs_)
    if (s.layer == layer) out.push_back(&s);
  return out;
}

std::pair<int64_t, int64_t> ParamStore::layer_range(int layer) const {
  int64_t begin = -1, end = -1;
  for (const auto& s : specs_)
    if (s.layer == layer) {
      if (begin < 0) begin = s.offset;
      end = s.offset + s.shape.numel();
    }
  return begin < 0 ? std::pair<int64_t, int64_t>{0, 0} : std::pair<int64_t, int64_t>{begin, end};
}

void ParamStore::init(Ctx& ctx, uint64_t seed) {
  CS_CHECK(param_dtype_ == DType::F32 || param_dtype_ == DType::BF16 || param_dtype_ == DType::F16)
      << "init of " << dtype_name(param_dtype_) << " parameters";
  std::vector<float> global, local;
  for (const auto& s : specs_) {
    HostCopy h(ctx, param(s), HostCopy::kWrite);
    const bool sliced = s.shape != s.global_shape, f32 = param_dtype_ == DType::F32;
    global.resize(sliced ? size_t(s.global_shape.numel()) : 0);
    local.resize(f32 ? 0 : size_t(s.shape.numel()));
    float* out = f32 ? static_cast<float*>(h.data()) : local.data();
    float* g = sliced ? global.data() : out;
    const int64_t n = s.global_shape.numel();
    if (s.init_std == 0) {
      for (int64_t i = 0; i < n; ++i) g[i] = 1.f;
    } else {
      philox_fill_normal(g, n, philox_key(seed, s.name), 0, 0.f, float(s.init_std));
    }
    if (sliced) take_shard_slice(s, shard_, cfg_.hidden_size, g, out);
    if (!f32) {  // a bf16 / f16 compute copy: the f32 values rounded to nearest even
      uint16_t* half = static_cast<uint16_t*>(h.data());
      for (size_t i = 0; i < local.size(); ++i)
        half[i] = param_dtype_ == DType::BF16 ? f32_to_bf16(local[i]) : f32_to_f16(local[i]);
    }
    h.flush();
  }
}

}  // namespace cs
