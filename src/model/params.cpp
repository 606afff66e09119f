#include "model/params.h"

#include <cmath>

#include "core/philox.h"

namespace cs {

std::vector<ParamSpec> param_specs(const ModelConfig& cfg) {
  std::vector<ParamSpec> specs;
  int64_t numel = 0;
  const int64_t d = cfg.hidden_size, f = cfg.ffn_hidden_size, v = cfg.vocab_size;
  const double std = cfg.init_std;
  // Megatron's scaled init for the two projections that feed the residual stream: std / sqrt(2L).
  const double out_std = cfg.init_std / std::sqrt(2.0 * double(cfg.num_layers));
  auto add = [&](std::string name, Shape s, TpSplit split, int layer, bool norm, double init) {
    specs.push_back({std::move(name), s, numel, split, layer, norm, init});
    numel += s.numel();
  };
  add("model.embed_tokens.weight", {v, d}, TpSplit::Vocab, -1, false, std);
  for (int i = 0; i < cfg.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    add(p + "input_layernorm.weight", {d}, TpSplit::None, i, true, 0);
    add(p + "self_attn.W_pack.weight", {3 * d, d}, TpSplit::ColumnQkvHeads, i, false, std);
    add(p + "self_attn.o_proj.weight", {d, d}, TpSplit::Row, i, false, out_std);
    add(p + "post_attention_layernorm.weight", {d}, TpSplit::None, i, true, 0);
    add(p + "mlp.gate_proj.weight", {f, d}, TpSplit::Column, i, false, std);
    add(p + "mlp.up_proj.weight", {f, d}, TpSplit::Column, i, false, std);
    add(p + "mlp.down_proj.weight", {d, f}, TpSplit::Row, i, false, out_std);
  }
  add("model.norm.weight", {d}, TpSplit::None, -2, true, 0);
  add("lm_head.weight", {v, d}, TpSplit::Vocab, -2, false, std);
  return specs;
}

ParamStore::ParamStore(const ModelConfig& cfg) : specs_(param_specs(cfg)) {
  numel_ = specs_.empty() ? 0 : specs_.back().offset + specs_.back().shape.numel();
  params_.resize(size_t(numel_) * sizeof(float));
  grads_.resize(size_t(numel_) * sizeof(float));
  w_ = views(params_);
  g_ = views(grads_);
}

ModelWeights ParamStore::views(const Buffer& b) const {
  auto at = [&](size_t i) { return Tensor(b.f32() + specs_[i].offset, specs_[i].shape); };
  ModelWeights m;
  m.embed = at(0);
  const size_t per_layer = 7;
  const size_t n_layers = (specs_.size() - 3) / per_layer;
  for (size_t l = 0; l < n_layers; ++l) {
    const size_t s = 1 + l * per_layer;
    LayerWeights lw{at(s), at(s + 1), at(s + 2), at(s + 3), Tensor(), at(s + 6)};
    const Shape gate = specs_[s + 4].shape;
    lw.wgu = Tensor(b.f32() + specs_[s + 4].offset, {2 * gate[0], gate[1]});
    m.layers.push_back(lw);
  }
  m.norm = at(specs_.size() - 2);
  m.head = at(specs_.size() - 1);
  return m;
}

const ParamSpec* ParamStore::find(const std::string& name) const {
  for (const auto& s : specs_)
    if (s.name == name) return &s;
  return nullptr;
}

void ParamStore::init(uint64_t seed) {
  for (const auto& s : specs_) {
    Tensor t = param(s);
    if (s.init_std == 0) {
      for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = 1.f;
    } else {
      philox_fill_normal(t.f32(), t.numel(), philox_key(seed, s.name), 0, 0.f, float(s.init_std));
    }
  }
}

}  // namespace cs
