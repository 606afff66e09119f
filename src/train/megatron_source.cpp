// Megatron-LM's names and layouts -> ours. Facts: megatron/core/models/gpt (GPTModel, the layer
// specs), megatron/core/transformer/attention.py (the QKV split: per query group, the group's
// query heads then its key and value head), mlp.py (linear_fc1 holds [gate; up] on each rank),
// megatron/legacy/model/transformer.py and language_model.py (the legacy names), and
// megatron/training/arguments.py (the argument names read for the config).
#include "train/megatron_source.h"

#include <fmt/core.h>

#include <map>
#include <regex>
#include <unordered_map>

#include "checkpoint/megatron.h"
#include "core/error.h"

namespace cs {

namespace {

// What a Megatron tensor is in our model.
enum class Part { Embed, InputNorm, Qkv, Proj, PostNorm, Fc1, Fc2, FinalNorm, Head };

// One Megatron tensor: its part, the global layer (-1 outside the decoder) and the local name.
struct Found {
  Part part;
  int layer = -1;
};

// The layer-internal names of both generations (Megatron-core's, with and without Transformer
// Engine's fused norms; the legacy model's, old and new norm names).
bool layer_part(const std::string& s, Part* part) {
  static const std::pair<const char*, Part> table[] = {
      {"input_layernorm.weight", Part::InputNorm},
      {"self_attention.linear_qkv.layer_norm_weight", Part::InputNorm},
      {"input_norm.weight", Part::InputNorm},
      {"self_attention.linear_qkv.weight", Part::Qkv},
      {"self_attention.query_key_value.weight", Part::Qkv},
      {"self_attention.linear_proj.weight", Part::Proj},
      {"self_attention.dense.weight", Part::Proj},
      {"pre_mlp_layernorm.weight", Part::PostNorm},
      {"mlp.linear_fc1.layer_norm_weight", Part::PostNorm},
      {"post_attention_norm.weight", Part::PostNorm},
      {"post_attention_layernorm.weight", Part::PostNorm},
      {"mlp.linear_fc1.weight", Part::Fc1},
      {"mlp.dense_h_to_4h.weight", Part::Fc1},
      {"mlp.linear_fc2.weight", Part::Fc2},
      {"mlp.dense_4h_to_h.weight", Part::Fc2}};
  for (const auto& [n, p] : table)
    if (s == n) {
      *part = p;
      return true;
    }
  return false;
}

// NAME (without "model.") -> part and stage-local layer; false for Transformer Engine's
// _extra_state entries (FP8 metadata, no weights). Anything else is an error naming it.
bool classify(const std::string& name, const std::string& file, Part* part, int* local_layer) {
  static const std::regex layer_re(R"((?:decoder|language_model\.encoder)\.layers\.(\d{1,6})\.(.+))");
  if (name.size() >= 12 && name.compare(name.size() - 12, 12, "_extra_state") == 0) return false;
  *local_layer = -1;
  std::smatch m;
  if (name == "embedding.word_embeddings.weight" || name == "language_model.embedding.word_embeddings.weight") {
    *part = Part::Embed;
  } else if (name == "output_layer.weight" || name == "language_model.output_layer.weight") {
    *part = Part::Head;
  } else if (name == "decoder.final_layernorm.weight" || name == "language_model.encoder.final_norm.weight" ||
             name == "language_model.encoder.final_layernorm.weight") {
    *part = Part::FinalNorm;
  } else if (std::regex_match(name, m, layer_re) && layer_part(m[2], part)) {
    *local_layer = std::stoi(m[1]);
  } else {
    const bool bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    throw Error(fmt::format("[megatron] {}: tensor model.{} is not part of a Baichuan/LLaMA-style model{}. Hint: "
                            "ChuanSpeed reads Megatron models with RMSNorm, SwiGLU, rotary (or ALiBi) positions, no "
                            "biases and an untied output layer", file, name,
                            bias ? " (a bias: the model was trained without --disable-bias-linear)"
                            : name.find("position_embeddings") != std::string::npos ? " (learned absolute positions)"
                                                                                    : ""));
  }
  return true;
}

class MegatronSource : public WeightSource {
 public:
  explicit MegatronSource(const std::string& root) : ck_(root) {
    read_config();
    index_tensors();
  }
  const char* kind() const override { return "megatron"; }
  const ModelConfig& config() const override { return config_; }
  std::string config_file() const override { return ck_.path(0, 0) + " (args)"; }
  int64_t stored_tensors() const override { return stored_; }
  void check(const std::vector<ParamSpec>& specs) const override;
  void read_rows(const ParamSpec& s, int64_t r0, int64_t r1, float* dst) const override;
  int64_t stored_bytes(const ParamSpec& s) const override;

 private:
  // The tensor of PART (and LAYER) on rank T: its file and name.
  struct Local {
    const TorchBinFile* file = nullptr;
    std::string name;  // with its "model." prefix
  };
  const Local& local(Part part, int layer, int t) const { return where_.at({int(part), layer}).at(size_t(t)); }
  const TorchScalar* arg(const std::string& n) const { return ck_.scalar("args." + n); }
  [[noreturn]] void refuse(const std::string& what) const {
    throw Error(fmt::format("[megatron] {}: {}. Hint: ChuanSpeed's model is a Baichuan/LLaMA-style decoder "
                            "(RMSNorm, SwiGLU, RoPE or ALiBi, no biases, untied output layer, one key/value head "
                            "per head)", ck_.path(0, 0), what));
  }
  int64_t int_arg(const std::string& n) const;
  std::string position_type() const;
  void read_config();
  void index_tensors();
  void check_shape(const Local& l, const Shape& want) const;

  MegatronCheckpoint ck_;
  ModelConfig config_;
  std::map<std::pair<int, int>, std::vector<Local>> where_;  // (part, global layer) -> per TP rank
  int64_t stored_ = 0;
};

int64_t MegatronSource::int_arg(const std::string& n) const {
  const TorchScalar* s = arg(n);
  if (!s || s->kind != TorchScalar::Kind::Int || s->i <= 0)
    throw Error(fmt::format("[megatron] {}: args.{} is {}, expected a positive integer. Hint: the checkpoint's "
                            "'args' (written by Megatron's save_checkpoint) describe the model", ck_.path(0, 0), n,
                            s ? "not an integer" : "missing"));
  return s->i;
}

// args.position_embedding_type: a string (Megatron-LM's 'rope', 'learned_absolute'), or an enum
// member (Megatron-DeepSpeed's and older Megatron-LM's PositionEmbeddingType: rotary = 1,
// absolute = 2, alibi = 3; later ones by name).
std::string MegatronSource::position_type() const {
  const TorchScalar* s = arg("position_embedding_type");
  if (!s) return "";
  if (s->kind == TorchScalar::Kind::Str) return s->s;
  const TorchScalar* v = arg("position_embedding_type.__args__.0");
  if (s->kind != TorchScalar::Kind::Other || !v) return "(a " + s->s + ")";
  if (v->kind == TorchScalar::Kind::Str) return v->s == "rotary" ? "rope" : v->s;
  if (v->kind == TorchScalar::Kind::Int && v->i == 1) return "rope";
  if (v->kind == TorchScalar::Kind::Int && v->i == 3) return "alibi";
  return fmt::format("{} member {}", s->s, v->kind == TorchScalar::Kind::Int ? std::to_string(v->i) : "?");
}

void MegatronSource::read_config() {
  using K = TorchScalar::Kind;
  const auto is_true = [&](const char* n) {
    const TorchScalar* s = arg(n);
    return s && s->kind == K::Bool && s->i;
  };
  const auto str = [&](const char* n) -> std::string {
    const TorchScalar* s = arg(n);
    return s && s->kind == K::Str ? s->s : "";
  };
  const auto num = [&](const char* n, double dflt) {
    const TorchScalar* s = arg(n);
    return !s ? dflt : s->kind == K::Float ? s->f : s->kind == K::Int ? double(s->i) : dflt;
  };
  if (!ck_.scalar("args.num_layers"))
    refuse("no saved arguments ('args'); the model config comes from them");
  const TorchScalar* version = ck_.scalar("checkpoint_version");
  if (!version || (version->kind == K::Float ? version->f : double(version->i)) < 2.0)
    refuse("checkpoint_version below 2.0 (its fused QKV rows are ordered otherwise; Megatron reorders them on load)");
  ModelConfig& c = config_;
  c.num_layers = int_arg("num_layers");
  c.hidden_size = int_arg("hidden_size");
  c.num_heads = int_arg("num_attention_heads");
  c.ffn_hidden_size = int_arg("ffn_hidden_size");
  c.max_seq_length = arg("max_position_embeddings") ? int_arg("max_position_embeddings") : int_arg("seq_length");
  c.rms_norm_eps = num("norm_epsilon", num("layernorm_epsilon", 1e-5));
  c.rope_base = num("rotary_base", 10000.0);
  c.init_std = num("init_method_std", 0.02);
  const std::string pos = position_type();
  if (pos == "rope" || (pos.empty() && is_true("use_rotary_position_embeddings"))) c.position = PositionType::Rope;
  else if (pos == "alibi") c.position = PositionType::Alibi;
  else refuse(fmt::format("args.position_embedding_type is {}, expected rope (or alibi)",
                          pos.empty() ? std::string("not given") : "'" + pos + "'"));
  if (str("normalization") != "RMSNorm") refuse(fmt::format("args.normalization is '{}', expected RMSNorm", str("normalization")));
  if (!is_true("swiglu")) refuse("args.swiglu is not set (the MLP is not SwiGLU)");
  if (is_true("add_bias_linear")) refuse("args.add_bias_linear is set (linear layers with biases)");
  if (arg("untie_embeddings_and_output_weights") && !is_true("untie_embeddings_and_output_weights"))
    refuse("args.untie_embeddings_and_output_weights is not set (the output layer is the embedding)");
  if (is_true("group_query_attention") && int_arg("num_query_groups") != c.num_heads)
    refuse(fmt::format("grouped-query attention ({} key/value heads for {} heads)", int_arg("num_query_groups"), c.num_heads));
  if (arg("kv_channels") && arg("kv_channels")->kind == K::Int && arg("kv_channels")->i * c.num_heads != c.hidden_size)
    refuse(fmt::format("args.kv_channels {} x {} heads is not the hidden size {}", arg("kv_channels")->i, c.num_heads,
                       c.hidden_size));
  if (num("rotary_percent", 1.0) != 1.0) refuse("args.rotary_percent is not 1.0 (partial rotary embeddings)");
  for (const char* n : {"rotary_interleaved", "qk_layernorm", "qk_l2_norm", "apply_layernorm_1p", "multi_latent_attention",
                        "use_rope_scaling", "apply_residual_connection_post_layernorm", "add_qkv_bias"})
    if (is_true(n)) refuse(fmt::format("args.{} is set", n));
  if (num("rotary_seq_len_interpolation_factor", 1.0) != 1.0)
    refuse("args.rotary_seq_len_interpolation_factor is not 1 (interpolated rotary positions)");
  if (const TorchScalar* w = arg("window_size"); w && w->kind != K::None) refuse("args.window_size is set (sliding-window attention)");
  if (!str("softmax_type").empty() && str("softmax_type") != "vanilla")
    refuse(fmt::format("args.softmax_type is '{}', expected vanilla", str("softmax_type")));
  if (const TorchScalar* e = arg("num_experts"); e && e->kind == K::Int && e->i > 0) refuse("a mixture of experts");
  if (arg("tensor_model_parallel_size") && int_arg("tensor_model_parallel_size") != ck_.tp())
    refuse(fmt::format("args.tensor_model_parallel_size is {} but the folder holds {} ranks",
                       int_arg("tensor_model_parallel_size"), ck_.tp()));
}

void MegatronSource::check_shape(const Local& l, const Shape& want) const {
  const Shape got = l.file->shape(l.name);
  if (got != want)
    throw Error(fmt::format("[megatron] {}: tensor {} has shape {}, expected {} from the saved arguments. "
                            "Hint: the arguments and the tensors disagree (a corrupt or hand-edited checkpoint?)",
                            l.file->path(), l.name, got.str(), want.str()));
}

void MegatronSource::index_tensors() {
  const int T = ck_.tp(), P = ck_.pp();
  int first_layer = 0;  // the stage's first global layer: stages hold consecutive layers
  for (int p = 0; p < P; ++p) {
    int stage_layers = 0;
    for (int t = 0; t < T; ++t) {
      const TorchBinFile& f = ck_.file(t, p);
      int layers = 0;
      for (const std::string& full : f.names()) {
        if (full.rfind("model.", 0) != 0)
          throw Error(fmt::format("[megatron] {}: tensor {}: a checkpoint with virtual pipeline stages ('model0', "
                                  "'model1', ...), which is not read here. Hint: re-save it without "
                                  "--num-layers-per-virtual-pipeline-stage (Megatron-LM's tools/checkpoint/convert.py)",
                                  f.path(), full));
        const std::string name = full.substr(6);
        Part part;
        int ll = -1;
        if (!classify(name, f.path(), &part, &ll)) continue;
        layers = std::max(layers, ll + 1);
        std::vector<Local>& v = where_[{int(part), ll < 0 ? -1 : first_layer + ll}];
        v.resize(size_t(T));
        if (v[size_t(t)].file)
          throw Error(fmt::format("[megatron] {}: {} and {} are the same tensor of ours", f.path(),
                                  v[size_t(t)].name, full));
        v[size_t(t)] = {&f, full};
        ++stored_;
      }
      if (t > 0 && layers != stage_layers)
        throw Error(fmt::format("[megatron] {}: {} layers, but tensor-parallel rank 0 of the stage has {}. Hint: copy "
                                "the checkpoint folder complete", f.path(), layers, stage_layers));
      stage_layers = layers;
    }
    first_layer += stage_layers;
  }
  ModelConfig& c = config_;
  if (first_layer != c.num_layers)
    refuse(fmt::format("the stages hold {} layers but args.num_layers is {}", first_layer, c.num_layers));
  // The vocabulary: the embedding's rows (Megatron's padded size), split over the ranks.
  const auto embed = where_.find({int(Part::Embed), -1});
  if (embed == where_.end() || !embed->second[0].file) refuse("no word embedding (model.embedding.word_embeddings.weight)");
  c.vocab_size = embed->second[0].file->shape(embed->second[0].name)[0] * T;
  c.validate();
  const int64_t D = c.hidden_size, F = c.ffn_hidden_size, V = c.vocab_size;
  if (c.num_heads % T || F % T)
    refuse(fmt::format("{} heads and an FFN of {} do not split over {} tensor-parallel ranks", c.num_heads, F, T));
  const auto want = [&](Part part, int layer, Shape shape, const char* what) {
    auto it = where_.find({int(part), layer});
    for (int t = 0; t < T; ++t) {
      if (it == where_.end() || !it->second[size_t(t)].file)
        refuse(fmt::format("no {}{} on tensor-parallel rank {}", what, layer >= 0 ? fmt::format(" in layer {}", layer) : "",
                           t));
      check_shape(it->second[size_t(t)], shape);
    }
  };
  want(Part::Embed, -1, {V / T, D}, "word embedding");
  want(Part::Head, -1, {V / T, D}, "output layer (a model with tied embeddings is not read)");
  want(Part::FinalNorm, -1, {D}, "final norm");
  for (int l = 0; l < c.num_layers; ++l) {
    want(Part::InputNorm, l, {D}, "input norm");
    want(Part::Qkv, l, {3 * D / T, D}, "fused QKV");
    want(Part::Proj, l, {D, D / T}, "attention output projection");
    want(Part::PostNorm, l, {D}, "pre-MLP norm");
    want(Part::Fc1, l, {2 * F / T, D}, "MLP input projection");
    want(Part::Fc2, l, {D, F / T}, "MLP output projection");
  }
}

// Our name -> (part, layer); Gate and Up both come from Fc1.
std::pair<Part, int> part_of(const ParamSpec& s) {
  switch (s.kind) {
    case ParamKind::Embed: return {Part::Embed, -1};
    case ParamKind::InputNorm: return {Part::InputNorm, s.layer};
    case ParamKind::Wpack: return {Part::Qkv, s.layer};
    case ParamKind::Wo: return {Part::Proj, s.layer};
    case ParamKind::PostNorm: return {Part::PostNorm, s.layer};
    case ParamKind::Gate:
    case ParamKind::Up: return {Part::Fc1, s.layer};
    case ParamKind::Down: return {Part::Fc2, s.layer};
    case ParamKind::FinalNorm: return {Part::FinalNorm, -1};
    case ParamKind::Head: return {Part::Head, -1};
  }
  return {Part::Embed, -1};
}

void MegatronSource::check(const std::vector<ParamSpec>& specs) const {
  // index_tensors found every tensor of the saved config, shaped as it says: SPECS must be exactly
  // that config's tensors, whole.
  std::unordered_map<std::string, Shape> saved;
  for (const ParamSpec& w : param_specs(config_)) saved.emplace(w.name, w.global_shape);
  for (const ParamSpec& s : specs) {
    const auto it = saved.find(s.name);
    if (it == saved.end())
      throw Error(fmt::format("[megatron] {}: {} is not in the checkpoint", ck_.dir(), s.name));
    if (s.shape != s.global_shape || it->second != s.global_shape)
      throw Error(fmt::format("[megatron] {}: {} is {} in the checkpoint, the model asks for {}", ck_.dir(), s.name,
                              it->second.str(), s.shape.str()));
  }
  if (specs.size() != saved.size())
    throw Error(fmt::format("[megatron] {}: the checkpoint holds {} of our tensors, the model {}", ck_.dir(),
                            saved.size(), specs.size()));
}

void MegatronSource::read_rows(const ParamSpec& s, int64_t r0, int64_t r1, float* dst) const {
  const auto [part, layer] = part_of(s);
  const int T = ck_.tp();
  const int64_t width = s.shape.ndim == 1 ? 1 : s.shape[1];
  const auto rows = [&](int t, int64_t lr0, int64_t lr1, float* out) {
    const Local& l = local(part, layer, t);
    l.file->read_f32_rows(l.name, lr0, lr1, out);
  };
  switch (part) {
    case Part::InputNorm:
    case Part::PostNorm:
    case Part::FinalNorm:  // replicated on every rank: rank 0's
      return rows(0, r0, r1, dst);
    case Part::Embed:
    case Part::Head:
    case Part::Fc1: {  // rows split by rank; Fc1 holds [gate; up] of each rank's slice
      const int64_t n = part == Part::Fc1 ? config_.ffn_hidden_size / T : config_.vocab_size / T;
      const int64_t skip = s.kind == ParamKind::Up ? n : 0;
      for (int64_t r = r0; r < r1;) {
        const int t = int(r / n);
        const int64_t end = std::min(r1, int64_t(t + 1) * n);
        rows(t, skip + r - int64_t(t) * n, skip + end - int64_t(t) * n, dst + (r - r0) * width);
        r = end;
      }
      return;
    }
    case Part::Qkv: {  // our rows [q; k; v], each head by head; Megatron's per rank, [q_h; k_h; v_h] by head
      const int64_t D = config_.hidden_size, hd = config_.head_dim(), per_rank = config_.num_heads / T;
      for (int64_t r = r0; r < r1;) {
        const int64_t which = r / D, head = (r % D) / hd, d = r % hd;
        const int t = int(head / per_rank);
        const int64_t lr = ((head % per_rank) * 3 + which) * hd + d;
        const int64_t end = std::min(r1, r - d + hd);  // the rest of this head's block
        rows(t, lr, lr + (end - r), dst + (r - r0) * width);
        r = end;
      }
      return;
    }
    case Part::Proj:
    case Part::Fc2: {  // columns split by rank: each of our rows is the ranks' rows side by side
      const int64_t cols = width / T;
      std::vector<float> piece(size_t((r1 - r0) * cols));
      for (int t = 0; t < T; ++t) {
        rows(t, r0, r1, piece.data());
        for (int64_t r = 0; r < r1 - r0; ++r)
          std::copy_n(piece.data() + r * cols, cols, dst + r * width + t * cols);
      }
      return;
    }
  }
}

int64_t MegatronSource::stored_bytes(const ParamSpec& s) const {
  const auto [part, layer] = part_of(s);
  int64_t bytes = 0;
  for (int t = 0; t < ck_.tp(); ++t) {
    const Local& l = local(part, layer, t);
    bytes += l.file->shape(l.name).numel() * int64_t(dtype_size(l.file->dtype(l.name)));
  }
  // Fc1 serves gate and up, each half of it; replicated norms count once.
  if (part == Part::Fc1) bytes /= 2;
  if (s.shape.ndim == 1) bytes /= ck_.tp();
  return bytes;
}

}  // namespace

std::unique_ptr<WeightSource> open_megatron_source(const std::string& root) {
  return std::make_unique<MegatronSource>(root);
}

MegatronCheckpointPosition megatron_checkpoint_position(const std::string& root) {
  const MegatronCheckpoint ck(root);
  return {ck.iteration(), ck.release()};
}

MegatronCheckpointPosition check_megatron_load(const std::string& root, bool finetune) {
  const MegatronCheckpointPosition at = megatron_checkpoint_position(root);
  if (!at.release && !finetune)
    throw UsageError(fmt::format("--load {}: a Megatron-LM checkpoint of iteration {}, whose optimizer state and data "
                                 "position are not read here. Hint: pass --finetune to train from its weights at "
                                 "iteration 0 (a release checkpoint starts so without it)", root, at.iteration));
  return at;
}

}  // namespace cs
