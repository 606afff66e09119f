#include "train/plan.h"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>

#include "core/error.h"
#include "model/flops.h"
#include "model/layer.h"
#include "model/model.h"
#include "parallel/grid.h"
#include "train/interleaved.h"
#include "train/pipeline.h"

namespace cs {

namespace {
constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
// Memory the GPU plan reserves outside the caching allocator's tensors: the CUDA/CANN context,
// cuBLAS and NCCL/HCCL workspaces. An assumption (typically 0.5-1.5 GiB), not a measurement.
constexpr double kGpuRuntimeReserve = 1.0 * kGiB;
constexpr double kMpiBaselineMiB = 9.0;
}  // namespace

const char* precision_name(PlanPrecision p) {
  return p == PlanPrecision::Fp16 ? "fp16" : p == PlanPrecision::Bf16 ? "bf16" : "fp32";
}

// Measured (peak RSS of `chuanspeed train` minus the planned buffers, OpenBLAS 0.3.21 OpenMP
// build): 10.1 MiB on 1 thread, 10.4 on 2, 11.8 on 4, 12.7 on 8 -- the binary and its libraries
// (~7.5 MiB), glibc/libgomp/OpenBLAS thread stacks and per-thread packing buffers.
double cpu_baseline_bytes(int threads) {
  return (9.6 + 0.4 * double(std::max(threads, 1))) * 1024 * 1024;
}

// Measured (peak RSS of a rank of `mpirun -np 2 chuanspeed train --tensor-model-parallel-size 2`,
// and of PP2 and DP2, minus the same run's planned buffers and cpu_baseline_bytes; Debian's OpenMPI
// 4.1): OpenMPI's libraries and its shared-memory transport's segments, 9 MiB in all three.
double cpu_mpi_baseline_bytes() { return kMpiBaselineMiB * 1024 * 1024; }

// Threaded OpenBLAS (more than one thread) packs, for a row-major C(m x n) = op(A) op(B) with
// inner size k, a buffer of m x kc floats, kc the k-block: k up to GEMM_Q, half of k below 2 GEMM_Q,
// GEMM_Q above (GEMM_Q = 320 on the SkylakeX/Cooperlake kernels; measured: dW_head = dlogits^T x
// with m = vocab grows RSS by vocab x min(tokens, 320) x 4 bytes). Freed after the call: the peak
// is the largest GEMM's. One thread packs within its fixed buffer instead.
double cpu_blas_pack_bytes(const ModelConfig& c, double n, int threads) {
  if (threads <= 1) return 0;
  constexpr double q = 320;
  auto kc = [](double k) { return k <= q ? k : k < 2 * q ? std::floor((std::floor(k / 2) + 15) / 16) * 16 : q; };
  const double d = double(c.hidden_size), f = double(c.ffn_hidden_size), v = double(c.vocab_size);
  const double widest = std::max({v, 3 * d, 2 * f});
  // Weight gradients: m = output rows (vocab, 3D, 2F), k = tokens; data gradients and forwards:
  // m = tokens, k = the widest input (vocab for dx of the head).
  return 4.0 * std::max(widest * kc(n), n * kc(widest));
}

BytesPerParam megatron_bytes_per_param(PlanPrecision p, bool distributed_optimizer, int64_t dp) {
  // Megatron-LM docs/distrib_optimizer.md: fp16 params + fp16 grads 20 (4 + 16/d distributed),
  // bf16 params + fp32 grads 18 (6 + 12/d), fp32 16 (8 + 8/d). The sharded part is the fp32
  // master weights (+ fp32 master grads for fp16) and Adam's m and v.
  const double shard = distributed_optimizer ? double(dp) : 1.0;
  switch (p) {
    case PlanPrecision::Fp16: return {2, 2, 16 / shard};
    case PlanPrecision::Bf16: return {2, 4, 12 / shard};
    case PlanPrecision::Fp32: break;
  }
  return {4, 4, 8 / shard};
}

double megatron_layer_activation_bytes(const ModelConfig& c, int64_t s, int64_t b, int64_t tp,
                                       bool sp, bool flash, PlanPrecision p) {
  // Korthikanti et al. 2022, sec. 4.1, per layer: attention 11sbh + 5as^2b, MLP 19sbh, norms 4sbh
  // (= sbh(34 + 5as/h)). Written per element so that a SwiGLU MLP of width F fits: the MLP keeps
  // its input (sbh), gate and up outputs (2sbF) and the SwiGLU output (sbF) -- with F = 8h/3 this
  // is exactly the paper's 34. Masks are 1 byte, the rest e bytes (2 for fp16/bf16, 4 for fp32).
  // Without sequence parallelism the norm inputs, the QKV and MLP inputs and the two dropout
  // masks are replicated on every tensor-parallel rank (the paper's "10sbh").
  const double e = p == PlanPrecision::Fp32 ? 4.0 : 2.0;
  const double sb = double(s) * double(b), h = double(c.hidden_size), f = double(c.ffn_hidden_size);
  const double a = double(c.num_heads), t = double(tp);
  const double repl = sb * (e * 4 * h + 2 * h);           // ln1, ln2, qkv in, mlp in; 2 masks
  const double split = sb * (e * 4 * h + e * 3 * f);      // q, k, v, attention out; gate, up, act
  const double scores = flash ? 4.0 * a * sb                // flash: the fp32 log-sum-exp only
                              : a * double(s) * sb * (2 * e + 1);  // softmax out, dropout out, mask
  return (sp ? repl / t : repl) + split / t + scores / t;
}

namespace {

void check_layout(const ModelConfig& c, const PlanLayout& l) {
  auto need = [](bool ok, const std::string& msg) {
    if (!ok) throw UsageError("[plan] " + msg);
  };
  need(l.tp >= 1 && l.pp >= 1 && l.world >= 1, fmt::format(
      "parallel sizes must be >= 1, got tensor {} pipeline {} world {}", l.tp, l.pp, l.world));
  // Products of flags are formed below: each must fit int64 first.
  int64_t product;
  need(!__builtin_mul_overflow(l.tp, l.pp, &product) && !__builtin_mul_overflow(l.micro_batch, l.world, &product),
       fmt::format("--tensor-model-parallel-size {} x --pipeline-model-parallel-size {} or --micro-batch-size {} x "
                   "world size {} is beyond any machine (it overflows a 64-bit count)", l.tp, l.pp, l.micro_batch,
                   l.world));
  need(l.world % (l.tp * l.pp) == 0, fmt::format(
      "world size {} is not a multiple of tensor x pipeline = {} x {}. Hint: pass --world-size "
      "(or --nnodes x --nproc-per-node) as a multiple of {}", l.world, l.tp, l.pp, l.tp * l.pp));
  need(c.num_heads % l.tp == 0, fmt::format("--num-attention-heads {} is not divisible by "
       "--tensor-model-parallel-size {}", c.num_heads, l.tp));
  need(c.ffn_hidden_size % l.tp == 0, fmt::format("--ffn-hidden-size {} is not divisible by "
       "--tensor-model-parallel-size {}", c.ffn_hidden_size, l.tp));
  need(c.num_layers % l.pp == 0, fmt::format("--num-layers {} is not divisible by "
       "--pipeline-model-parallel-size {} (Megatron's stages hold equal layer counts)", c.num_layers, l.pp));
  need(l.seq_length >= 1 && l.seq_length <= c.max_seq_length, fmt::format(
      "--seq-length {} must be in [1, {}] (the model's positions)", l.seq_length, c.max_seq_length));
  need(!l.sequence_parallel || l.tp == 1 || l.seq_length % l.tp == 0, fmt::format(
      "--sequence-parallel splits the sequence over the {} tensor-parallel ranks: --seq-length {} is not a "
      "multiple of {}", l.tp, l.seq_length, l.tp));
  const int64_t dp = l.world / (l.tp * l.pp);
  // 0 is a multiple of anything, but gives no micro-batch to plan (and a bubble of 0/0).
  need(l.global_batch >= 1, fmt::format("--global-batch-size {} must be at least 1", l.global_batch));
  need(l.micro_batch >= 1 && l.global_batch % (l.micro_batch * dp) == 0, fmt::format(
      "--global-batch-size {} is not a multiple of --micro-batch-size {} x data-parallel size {}",
      l.global_batch, l.micro_batch, dp));
}

double layer_fwd_flops(const ModelConfig& c, int64_t samples, int64_t seq) {
  ModelConfig no_head = c;
  no_head.vocab_size = 0;  // model_flops without the logits: the decoder layers only
  return model_flops(no_head, samples, seq) / 3.0;
}

void fill_flops(Plan& p, const ModelConfig& c, const PlanLayout& l) {
  p.flops_iter = model_flops(c, l.global_batch, l.seq_length);
  const double recompute = c.recompute ? layer_fwd_flops(c, l.global_batch, l.seq_length) : 0.0;
  p.flops_rank = (p.flops_iter + recompute) / double(l.world);
  // Interleaving divides the bubble by the chunks per rank (Narayanan et al. 2021 §2.2).
  const double chunks = l.virtual_layers > 0 ? double(c.num_layers) / double(l.pp * l.virtual_layers) : 1.0;
  p.bubble = double(l.pp - 1) / double(p.num_micro) / chunks;
}

// The CPU trainer, one rank of each pipeline stage (tensor- and data-parallel ranks of a stage are
// alike), the most loaded kept: ParamStore and AdamW (the Adam state sharded over the data-parallel
// ranks with the distributed optimizer), and the activations exactly as Model's constructor carves
// them (Model::planned_activation_bytes: the same code) for the stage's micro-batches in flight.
Plan cpu_plan(const ModelConfig& c, const PlanLayout& l) {
  const int64_t tp = l.tp, pp = l.pp, dp = l.world / (tp * pp), L = c.num_layers;
  const int64_t m = l.global_batch / (l.micro_batch * dp);
  // Interleaved: each stage holds V chunks, each with the interleaved schedule's slots.
  check_virtual_pipeline(l.virtual_layers, pp, L, m);
  const int chunks = l.virtual_layers > 0 ? int(L / (pp * l.virtual_layers)) : 1;
  // Model plans its buffers for max_batch x the config's max_seq_length (train.cpp), not --seq-length.
  // Byte counts are doubles: the flags' and files' sizes may multiply past int64.
  const double n = double(l.micro_batch) * double(c.max_seq_length);
  const double samples = l.train_samples > 0 ? double(l.train_samples)
                                            : double(std::max<int64_t>(l.train_iters, 1)) * double(l.global_batch);
  const double order = l.cyclic ? 8.0 * samples / double(l.data_sharding ? dp : 1) : 0.0;
  const double data = l.training ? 2 * n * 4 + 3 * double(l.micro_batch) * (double(l.seq_length) + 1) * 4 +
                                       24.0 * samples + order
                                 : 2 * n * 4;
  // --bf16 on the CPU: a bf16 compute copy of the parameters, fp32 gradients, fp32 master weights
  // beside Adam's moments, and the GEMMs' saved activations in bf16 (Precision::bf16()). --fp16
  // keeps the fp32 path on the CPU.
  const bool bf16 = l.precision == PlanPrecision::Bf16;
  const Precision precision = bf16 ? Precision::bf16() : Precision{};
  ModelConfig rank_widths = c;  // what one rank's GEMMs see (BLAS packing)
  rank_widths.vocab_size = c.vocab_size / tp;
  rank_widths.ffn_hidden_size = c.ffn_hidden_size / tp;
  Plan best;
  for (int st = 0; st < pp; ++st) {
    ModelShard shard = ModelShard::stage(c, st, int(pp), 0, int(tp), chunks);
    shard.sequence_parallel = l.sequence_parallel && tp > 1;
    Plan p;
    p.backend = PlanBackend::Cpu;
    p.dp = dp;
    p.num_micro = m;
    p.stage = st;
    p.stage_layers = L / pp;
    p.params_total = c.num_params();
    // A stage of more layers than any model has (a mistyped size, which train refuses with this
    // plan) is planned from stages of 1 and 2 layers, extrapolated: everything per layer is the
    // same, and building a spec or a saved set per layer would itself exhaust memory.
    const int64_t stage_layers = p.stage_layers, kExact = 1024;
    auto with_layers = [&](ModelConfig cfg, int64_t per_stage) {
      cfg.num_layers = per_stage * pp;
      // (one chunk of per_stage layers: the same bytes per layer; the extrapolation is linear)
      ModelShard sh = ModelShard::stage(cfg, st, int(pp), 0, int(tp));
      sh.sequence_parallel = shard.sequence_parallel;
      return std::pair<ModelConfig, ModelShard>(cfg, sh);
    };
    auto linear = [&](const std::function<double(const ModelConfig&, const ModelShard&)>& f, const ModelConfig& cfg) {
      if (stage_layers <= kExact) return f(cfg, shard);
      const auto [c1, s1] = with_layers(cfg, 1);
      const auto [c2, s2] = with_layers(cfg, 2);
      const double one = f(c1, s1);
      return one + (f(c2, s2) - one) * double(stage_layers - 1);
    };
    double layer_max = 0;  // the largest layer's parameters: what a data-parallel sum reduces at once
    auto count_params = [&](const ModelConfig& cfg, const ModelShard& sh) {
      std::map<int, int64_t> per_layer;
      double total = 0;
      for (const ParamSpec& s : param_specs(cfg, sh)) {
        total += double(s.shape.numel());
        per_layer[s.layer] += s.shape.numel();
      }
      for (const auto& [layer, numel] : per_layer) layer_max = std::max(layer_max, double(numel));
      return total;
    };
    const double np = linear(count_params, c);
    p.params_rank = int64_t(np);
    const int64_t in_flight = chunks > 1 ? interleaved_slots(int(pp), chunks, m) : one_f_one_b_slots(st, int(pp), m);
    // Model's own carving at the planned dims; where those dims' int64 sizes could overflow, one
    // token's carving scaled by the tokens (an upper bound: each tensor rounded up alone).
    auto carved = [&](const ModelConfig& cfg, const ModelShard& sh) {
      const int64_t rows = sh.sequence_parallel ? tp : 1;
      const double one = double(Model::planned_activation_bytes(cfg, sh, 1, rows, precision, in_flight)) / double(rows);
      if (one * n >= 0x1p60) return one * n;
      return double(Model::planned_activation_bytes(cfg, sh, l.micro_batch, c.max_seq_length, precision, in_flight));
    };
    auto activations = [&](const ModelConfig& cfg) { return linear(carved, cfg); };
    ModelConfig with = c, without = c;
    with.recompute = true;
    with.recompute_num_layers = -1;
    without.recompute = false;
    p.activations_recompute = activations(with);
    p.activations_no_recompute = activations(without);
    const double acts = activations(c);
    const int64_t recomputed = !c.recompute ? 0 : c.recompute_num_layers < 0 ? p.stage_layers
                                                  : std::min(p.stage_layers, c.recompute_num_layers);
    const bool sharded = l.distributed_optimizer && dp > 1;
    // MpiGroup keeps the rows it folds between calls: the largest tensor summed at once (a layer's
    // gradients, the whole gradient buffer reduce-scattered by the distributed optimizer, or the
    // (N, D) activations of a tensor-parallel exchange).
    double fold = 0;
    if (dp > 1 && sharded) fold = std::ceil(np / double(dp)) * double(dp) * 4;
    if (dp > 1 && !sharded) fold = layer_max * 4;
    if (tp > 1) fold = std::max(fold, n * double(c.hidden_size) * 4);
    p.items = {
        {"parameters", np * (bf16 ? 2 : 4), fmt::format("{:.2f}M x {}{}", np / 1e6, bf16 ? "2 B (bf16 compute copy)" : "4 B (fp32)",
                                           tp * pp > 1 ? fmt::format(", this rank's of {:.2f}M", double(p.params_total) / 1e6)
                                                       : "")},
        {"gradients", np * 4, "fp32, one buffer"},
        {"optimizer states", !l.training ? 0.0 : (sharded ? std::ceil(np / double(dp)) : np) * (bf16 ? 12 : 8),
         !l.training ? "none (not training)"
         : sharded ? fmt::format("{} (fp32), a 1/{} shard (distributed optimizer; + the whole state gathered "
                                 "while saving)", bf16 ? "master weights, Adam m, v" : "Adam m, v", dp)
         : bf16    ? "fp32 master weights, Adam m, v"
                   : "Adam m, v (fp32); the parameters are the master weights"},
        {"activations", acts,
         fmt::format("{} layers{} x mb {} x seq {}{}{}{}; backward scratch{}", p.stage_layers,
                     chunks > 1 ? fmt::format(" in {} interleaved chunks (each its own slots)", chunks) : "",
                     l.micro_batch, c.max_seq_length, in_flight > 1 ? fmt::format(" x {} micro-batches in flight", in_flight) : "",
                     !c.recompute ? ", no recompute"
                     : recomputed == p.stage_layers ? ", full recompute: layer inputs + 1 layer set"
                                                    : fmt::format(", the first {} layers recomputed", recomputed),
                     shard.sequence_parallel ? ", residual stream 1/TP (SP)" : "",
                     shard.has_head ? fmt::format("; logits {} x vocab {}", n, c.vocab_size / tp) : "")},
        {"data", data,
         l.training ? fmt::format("token/target buffers, sample indices{}", l.cyclic ? ", the cyclic order's permutation" : "")
                    : "the model's token/target copies (not training)"},
        {"communication buffers", fold, l.world > 1 ? "the largest tensor summed at once (MPI fold rows)" : "none"},
        {"BLAS packing", cpu_blas_pack_bytes(rank_widths, n, l.cpu_threads),
         l.cpu_threads > 1 ? "threaded OpenBLAS: the largest GEMM's packed panel (transient)" : "none on 1 thread"},
        {"process baseline", cpu_baseline_bytes(l.cpu_threads) + (l.world > 1 ? cpu_mpi_baseline_bytes() : 0.0),
         fmt::format("binary, libraries, {} OpenMP threads{} (measured)", l.cpu_threads,
                     l.world > 1 ? ", OpenMPI" : "")},
    };
    for (const PlanItem& it : p.items) p.peak_bytes += it.bytes;
    if (st == 0 || p.peak_bytes > best.peak_bytes) best = p;
  }
  fill_flops(best, c, l);
  return best;
}

// Megatron-LM / AscendSpeed on accelerators: one rank of each pipeline stage, the most loaded kept.
Plan gpu_plan(const ModelConfig& c, const PlanLayout& l) {
  const int64_t t = l.tp, pp = l.pp, dp = l.world / (t * pp), L = c.num_layers;
  const int64_t d = c.hidden_size, f = c.ffn_hidden_size, v = c.vocab_size, s = l.seq_length,
                b = l.micro_batch;
  const int64_t m = l.global_batch / (b * dp);
  if (l.virtual_layers > 0)
    throw UsageError(fmt::format("[plan] --num-layers-per-virtual-pipeline-stage {}: the gpu plan models contiguous "
                                 "1F1B stages only. Hint: --backend cpu plans this trainer's interleaved chunks",
                                 l.virtual_layers));
  const double e = l.precision == PlanPrecision::Fp32 ? 4.0 : 2.0;
  const BytesPerParam bpp = megatron_bytes_per_param(l.precision, l.distributed_optimizer, dp);
  const double sp_div = l.sequence_parallel ? double(t) : 1.0;
  const double sbh = double(s) * double(b) * double(d);
  const double act_layer = megatron_layer_activation_bytes(c, s, b, t, l.sequence_parallel,
                                                           l.flash_attention, l.precision);
  const double input_layer = e * sbh / sp_div;  // full recompute keeps each layer's input only
  Plan best;
  for (int st = 0; st < pp; ++st) {
    Plan p;
    p.backend = PlanBackend::Gpu;
    p.dp = dp;
    p.num_micro = m;
    p.stage = st;
    p.stage_layers = L / pp;
    p.params_total = c.num_params();
    const bool first = st == 0, last = st == pp - 1;
    const int64_t per_layer = (4 * d * d + 3 * d * f) / t + 2 * d;
    p.params_rank = p.stage_layers * per_layer + (first ? v * d / t : 0) + (last ? d + v * d / t : 0);
    const double np = double(p.params_rank);
    // 1F1B: stage st has warm-up forwards of pp - st micro-batches in flight before its first backward.
    const int64_t in_flight = std::min<int64_t>(pp - st, m);
    const double layers = double(p.stage_layers);
    p.activations_no_recompute = double(in_flight) * layers * act_layer;
    p.activations_recompute = double(in_flight) * layers * input_layer + act_layer;
    const double head = last ? e * 2 * sbh / sp_div + (e + 4) * double(s) * double(b) * double(v) / double(t) : 0;
    const double comm = (t > 1 ? e * sbh : 0) + (pp > 1 ? 2 * e * sbh / sp_div : 0);
    const std::string prec = precision_name(l.precision);
    p.items = {
        {"parameters", np * bpp.weights, fmt::format("{:.1f}M x {} B ({})", np / 1e6, bpp.weights, prec)},
        {"gradients", np * bpp.grads, fmt::format("{} B each (Megatron's grad buffer)", bpp.grads)},
        {"optimizer states", np * bpp.optimizer,
         fmt::format("{:.2f} B each: {}Adam m, v{}", bpp.optimizer,
                     l.precision == PlanPrecision::Fp32 ? "" : l.precision == PlanPrecision::Fp16
                         ? "fp32 master weights + grads, " : "fp32 master weights, ",
                     l.distributed_optimizer ? fmt::format(", sharded over DP {}", dp) : "")},
        {"activations", c.recompute ? p.activations_recompute : p.activations_no_recompute,
         fmt::format("{} layers x {} micro-batch{} in flight{}{}{}", p.stage_layers, in_flight,
                     in_flight > 1 ? "es" : "", c.recompute ? ", full recompute" : "",
                     l.sequence_parallel ? ", SP" : "", l.flash_attention ? ", flash" : ", s^2 scores")},
        {"logits + cross entropy", head, last ? fmt::format("{} x vocab {}/{} ({} logits + fp32 softmax)",
                                                           double(s) * double(b), v, t, prec) : "not on this stage"},
        {"communication buffers", comm, "SP all-gather, pipeline send/recv"},
        {"runtime reserve", kGpuRuntimeReserve, "context, cuBLAS/NCCL workspaces (assumed)"},
    };
    for (const PlanItem& it : p.items) p.peak_bytes += it.bytes;
    if (st == 0 || p.peak_bytes > best.peak_bytes) best = p;
  }
  fill_flops(best, c, l);
  return best;
}

}  // namespace

Plan make_plan(const ModelConfig& c, const PlanLayout& l, PlanBackend backend) {
  c.validate();
  check_layout(c, l);
  return backend == PlanBackend::Cpu ? cpu_plan(c, l) : gpu_plan(c, l);
}

}  // namespace cs
