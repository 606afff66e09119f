// chuanspeed plan [train's flags] [--world-size N] [--gemm-tflops R] [--device-memory SIZE]:
// bytes per rank (parameters, gradients, optimizer states, activations with and without
// recomputation, buffers), FLOPs per iteration and a predicted step time for a model and parallel
// layout, before anything is launched. Every `train` flag is accepted, so a launch script's
// argument list can be planned as is. Exit status: 0, 3 when --device-memory is too small,
// 2 usage error, 1 bad input. The formulas: src/train/plan.cpp and docs/operations.md.
#include <fmt/core.h>

#include <filesystem>
#include <fstream>
#include <omp.h>
#include <nlohmann/json.hpp>

#include "checkpoint/megatron.h"
#include "checkpoint/native.h"
#include "cli/commands.h"
#include "cli/parse.h"
#include "cli/train_flags.h"
#include "core/checked.h"
#include "core/error.h"
#include "core/file_io.h"
#include "data/tokenizer.h"
#include "model/config.h"
#include "train/checkpointing.h"
#include "train/hf_model.h"
#include "train/megatron_source.h"
#include "train/memory_budget.h"
#include "train/plan.h"

namespace cs::cli {

namespace {

std::string human_flops(double f) {
  if (f >= 1e15) return fmt::format("{:.2f} PFLOP", f / 1e15);
  if (f >= 1e12) return fmt::format("{:.2f} TFLOP", f / 1e12);
  return fmt::format("{:.2f} GFLOP", f / 1e9);
}

// The model as train builds it: --load's config (HF or native), else the preset with the flags.
// The vocabulary comes from the tokenizer, --vocab-size or the preset, padded as Megatron pads it
// for this tensor-parallel size.
// CONFIG_FILE receives the file the config came from ("" for the flags).
// use_checkpoint_args: --use-checkpoint-args (the architecture flags are checked against --load's
// config as train checks them).
ModelConfig plan_config(const TrainFlags& f, int64_t tp, std::vector<std::string>& notes, std::string& config_file,
                        bool use_checkpoint_args) {
  namespace fs = std::filesystem;
  const int64_t seq = f.model.seq_length.value_or(0);
  if (f.load && fs::exists(*f.load)) {
    ModelConfig c;
    if (is_native_checkpoint(*f.load)) {
      c = checkpoint_model_config(*f.load, &config_file, f.load_step());
    } else if (is_megatron_checkpoint(*f.load)) {
      check_megatron_load(*f.load, f.finetune && !f.resume);  // as train refuses it
      c = hf_model_config(*f.load);
      config_file = hf_model_config_file(*f.load);
    } else {
      const std::string path = *f.load + "/config.json";
      config_file = path;
      require_regular_file(path, "plan", "a Hugging Face directory holds config.json as a file");
      std::ifstream in(path);
      if (!in) throw Error(fmt::format("[plan] --load {}: no config.json and not a native checkpoint. "
                                       "Hint: pass a Hugging Face model directory or a checkpoint root", *f.load));
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(in);
      } catch (const nlohmann::json::exception& e) {
        throw Error(fmt::format("[plan] {}: not valid JSON ({})", path, e.what()));
      }
      c = config_from_hf_json(j, path);
    }
    std::optional<int64_t> flag_vocab;  // without a tokenizer: --vocab-size (+ 1 for NullTokenizer)
    if (!f.tokenizer_path() && f.model.vocab_size) flag_vocab = *f.model.vocab_size + (f.null_tokenizer() ? 1 : 0);
    f.model.check_loaded(c, config_file, flag_vocab, use_checkpoint_args);
    c.max_seq_length = std::max(c.max_seq_length, seq);
    f.model.apply_recompute(c);
    notes.push_back(fmt::format("model from --load {}", *f.load));
    // Tensor parallelism splits the embedding and head by vocabulary rows, which Megatron pads to a
    // multiple of divisible_by x tp (a one-rank run keeps the checkpoint's rows as they are).
    const int64_t padded = padded_vocab_size(c.vocab_size, f.model.divisible_by, tp);
    if (tp > 1 && padded != c.vocab_size) {
      notes.push_back(fmt::format("vocabulary {} padded to {} for tensor parallelism {}", c.vocab_size, padded, tp));
      c.vocab_size = padded;
    }
    return c;
  }
  if (f.load) notes.push_back(fmt::format("--load {} does not exist here: the model comes from the flags", *f.load));
  std::optional<int64_t> vocab = f.model.vocab_size;
  if (f.null_tokenizer()) {
    if (!vocab) throw UsageError("[plan] --tokenizer-type NullTokenizer needs --vocab-size");
    vocab = *vocab + 1;
  } else if (f.tokenizer_path() && fs::exists(*f.tokenizer_path())) {
    vocab = Tokenizer(*f.tokenizer_path()).vocab_size();
    notes.push_back(fmt::format("vocabulary: {} pieces from {}", *vocab, *f.tokenizer_path()));
  } else if (f.tokenizer_path() && !vocab) {
    if (f.model.model.rfind("baichuan", 0) != 0)
      throw UsageError(fmt::format("[plan] the vocabulary is unknown: the tokenizer {} is not readable "
                                   "here. Hint: pass --vocab-size (64000 for Baichuan)", *f.tokenizer_path()));
    notes.push_back(fmt::format("tokenizer {} not readable here: the preset's vocabulary", *f.tokenizer_path()));
  }
  ModelFlags mf = f.model;
  mf.vocab_size.reset();
  ModelConfig c = mf.resolve();
  f.megatron.apply(c);  // --norm-epsilon, as train applies it
  // Megatron pads the tokenizer's vocabulary to a multiple of divisible_by x tp.
  c.vocab_size = padded_vocab_size(vocab.value_or(c.vocab_size), f.model.divisible_by, tp);
  return c;
}

}  // namespace

int plan_main(int argc, char** argv) {
  CLI::App app("Memory per rank, FLOPs and step time of a model and layout (train's flags)", "plan");
  TrainFlags f;
  f.add_to(app);
  for (const char* flag : {"--data-path", "--lr"}) app.get_option(flag)->required(false);
  int64_t world = 0, nnodes = 1, nproc = 0;
  std::string backend = "auto", device_memory;
  double gemm_tflops = 0;
  bool json = false, flash = false;
  int cpu_threads = omp_get_max_threads();
  app.add_option("--world-size,--num-gpus", world, "ranks in the job (default: nnodes x nproc-per-node, "
                 "else tensor x pipeline, i.e. data-parallel 1)")->check(positive());
  app.add_option("--nnodes", nnodes, "nodes (with --nproc-per-node)")->check(positive());
  app.add_option("--nproc-per-node", nproc, "ranks per node")->check(positive());
  app.add_option("--backend", backend, "cpu (this trainer, fp32), gpu (Megatron-LM on accelerators) "
                 "or auto: gpu with --fp16/--bf16 or any parallel size > 1")
      ->check(CLI::IsMember({"auto", "cpu", "gpu"}));
  app.add_option("--gemm-tflops", gemm_tflops, "measured GEMM rate of one device, TFLOP/s: predicts the step time")
      ->check(positive());
  app.add_option("--device-memory", device_memory, "memory of one device (e.g. 80GB, 64GiB): "
                 "exit 3 with a WARNING when the peak does not fit");
  app.add_option("--cpu-threads", cpu_threads, "cpu: OpenMP threads of the run (default: this "
                 "machine's, i.e. OMP_NUM_THREADS or the cores)")->check(positive());
  app.get_option("--use-flash-attn")->description("gpu: flash attention (no s^2 scores saved)");
  app.add_flag("--json", json)->description("print one JSON object instead of the table");
  int code = 0;
  if (!parse(app, argc, argv, code)) return code;
  f.check_supported(app);
  f.resolve_pretrained();  // the model a run would load
  flash = app.count("--use-flash-attn") > 0;
  const int64_t device_bytes = device_memory.empty() ? 0 : parse_byte_size(device_memory, "--device-memory");

  PlanLayout l;
  l.tp = f.tp;
  l.pp = f.pp;
  const int64_t node_ranks = nproc ? checked_mul(nnodes, nproc, "--nnodes x --nproc-per-node", 2) : 0;
  l.world = world ? world : nproc ? node_ranks
                                  : checked_mul(f.tp, f.pp, "--tensor- x --pipeline-model-parallel-size", 2);
  if (world && nproc && world != node_ranks)
    throw UsageError(fmt::format("[plan] --world-size {} disagrees with --nnodes {} x --nproc-per-node {}",
                                 world, nnodes, nproc));
  l.micro_batch = f.micro_batch;
  l.global_batch = f.global_batch.value_or(checked_mul(f.micro_batch, l.world / std::max<int64_t>(1, f.tp * f.pp),
                                                       "--micro-batch-size x data-parallel size", 2));
  // As train counts them (plan needs no run length: without one the data indices are not counted).
  const bool length = f.train_iters || f.train_samples || !f.rampup_batch_size.empty();
  l.train_iters = length ? f.run_length(std::max<int64_t>(1, l.global_batch)).first : 0;
  l.train_samples = f.train_samples.value_or(0);  // a rampup's iterations take fewer samples each
  l.cyclic = f.dataloader_type == "cyclic";
  l.data_sharding = !f.no_data_sharding;
  l.sequence_parallel = app.count("--sequence-parallel") > 0 && f.tp > 1;
  l.distributed_optimizer = f.distributed_optimizer || (f.zero_stage && *f.zero_stage >= 1);
  l.flash_attention = flash;
  l.cpu_threads = cpu_threads;
  l.precision = f.fp16 ? PlanPrecision::Fp16 : f.bf16 ? PlanPrecision::Bf16 : PlanPrecision::Fp32;
  const bool gpu = backend == "gpu" ||
                   (backend == "auto" && (f.fp16 || f.bf16 || l.tp > 1 || l.pp > 1 || l.world > 1));
  std::vector<std::string> notes;
  std::string config_file;
  const ModelConfig c = plan_config(f, gpu ? l.tp : 1, notes, config_file, f.megatron.use_checkpoint_args(app));
  // --kv-channels, --num-query-groups, --norm-epsilon as train checks them
  f.megatron.check_model(c, f.load && f.megatron.use_checkpoint_args(app));
  f.resolve_virtual_stages(c.num_layers);
  l.virtual_layers = f.virtual_pipeline_layers.value_or(0);
  l.seq_length = f.model.seq_length.value_or(c.max_seq_length);
  const Plan p = make_plan(c, l, gpu ? PlanBackend::Gpu : PlanBackend::Cpu);
  // The CPU plan against this machine: the refusal train would give here, in the same words.
  const AvailableMemory avail = gpu ? AvailableMemory{} : available_memory();
  MemoryRequest need;
  need.micro_batch = l.micro_batch;
  need.training = true;
  need.global_batch = l.global_batch;
  need.train_iters = l.train_iters;
  need.dp = p.dp;
  need.tp = l.tp;  // the same rank train would check: its tensor and pipeline share
  need.pp = l.pp;
  need.virtual_layers = l.virtual_layers;
  need.sequence_parallel = l.sequence_parallel;
  need.distributed_optimizer = l.distributed_optimizer;
  need.config_file = config_file;
  need.batch_source = fmt::format("--micro-batch-size {} and --seq-length {} (--train-iters {}, --global-batch-size {})",
                                  l.micro_batch, c.max_seq_length, l.train_iters, l.global_batch);
  const std::string refusal = memory_refusal(c, need, p, avail);
  const double step_s = gemm_tflops > 0 ? p.flops_rank / (gemm_tflops * 1e12) * (1 + p.bubble) : 0;
  const bool fits = device_bytes == 0 || p.peak_bytes <= double(device_bytes);

  if (json) {
    nlohmann::ordered_json j;
    j["backend"] = gpu ? "gpu" : "cpu";
    j["model"] = c.summary();
    j["tp"] = l.tp, j["pp"] = l.pp, j["dp"] = p.dp, j["world"] = l.world;
    j["micro_batch"] = l.micro_batch, j["global_batch"] = l.global_batch, j["seq_length"] = l.seq_length;
    j["micro_batches_per_rank"] = p.num_micro;
    j["stage"] = p.stage, j["stage_layers"] = p.stage_layers;
    j["params_total"] = p.params_total, j["params_rank"] = p.params_rank;
    for (const PlanItem& it : p.items) j["bytes"][it.name] = it.bytes;
    j["peak_bytes"] = p.peak_bytes;
    j["activations_no_recompute_bytes"] = p.activations_no_recompute;
    j["activations_recompute_bytes"] = p.activations_recompute;
    j["flops_iter"] = p.flops_iter, j["flops_rank"] = p.flops_rank, j["bubble"] = p.bubble;
    if (step_s > 0) j["step_s"] = step_s;
    if (device_bytes) j["device_memory_bytes"] = device_bytes, j["fits"] = fits;
    if (avail.bytes >= 0) j["available_bytes"] = avail.bytes, j["fits_here"] = refusal.empty();
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    for (const std::string& n : notes) std::printf("note: %s\n", n.c_str());
    std::printf("model:   %s\n", c.summary().c_str());
    std::printf("backend: %s\n", gpu ? fmt::format("gpu (Megatron-LM / AscendSpeed, {})", precision_name(l.precision)).c_str()
                                     : fmt::format("cpu (chuanspeed train: {}, one process per rank)",
                                                   l.precision == PlanPrecision::Bf16 ? "bf16 GEMMs, fp32 master weights" : "fp32").c_str());
    std::printf("layout:  TP %lld x PP %lld x DP %lld = %lld ranks; micro-batch %lld, global batch %lld "
                "(%lld micro-batch%s per rank), seq %lld%s%s%s\n",
                (long long)l.tp, (long long)l.pp, (long long)p.dp, (long long)l.world,
                (long long)l.micro_batch, (long long)l.global_batch, (long long)p.num_micro,
                p.num_micro == 1 ? "" : "es", (long long)l.seq_length, l.sequence_parallel ? ", sequence parallel" : "",
                l.distributed_optimizer ? ", distributed optimizer" : "",
                c.recompute ? ", full recompute" : "");
    std::printf("\nper rank of pipeline stage %d of %lld (%lld layers, %.1fM of %.1fM parameters):\n", p.stage,
                (long long)l.pp, (long long)p.stage_layers, double(p.params_rank) / 1e6, double(p.params_total) / 1e6);
    for (const PlanItem& it : p.items)
      std::printf("  %-24s %12s   %s\n", it.name.c_str(), human_bytes(it.bytes).c_str(), it.note.c_str());
    std::printf("  %-24s %12s\n", "peak", human_bytes(p.peak_bytes).c_str());
    std::printf("\nactivations: %s without recomputation, %s with --recompute-granularity full\n",
                human_bytes(p.activations_no_recompute).c_str(), human_bytes(p.activations_recompute).c_str());
    std::printf("FLOPs per iteration: %s (model, all ranks); %s per rank%s\n", human_flops(p.flops_iter).c_str(),
                human_flops(p.flops_rank).c_str(), c.recompute ? " (with the recomputed forward)" : "");
    if (step_s > 0)
      std::printf("step time: %.3f s predicted at %.1f TFLOP/s (compute %.3f s x (1 + bubble %.3f))\n",
                  step_s, gemm_tflops, step_s / (1 + p.bubble), p.bubble);
    else
      std::printf("step time: pass --gemm-tflops R (a measured GEMM rate) to predict it\n");
    if (avail.bytes >= 0)
      std::printf("this machine: %s available (%s): %s\n", human_bytes(double(avail.bytes)).c_str(), avail.source.c_str(),
                  refusal.empty() ? fmt::format("fits ({:.0f} % used)", 100 * p.peak_bytes / double(avail.bytes)).c_str()
                                  : "DOES NOT FIT (train refuses it here)");
    if (device_bytes)
      std::printf("device memory %s: %s\n", human_bytes(double(device_bytes)).c_str(),
                  fits ? fmt::format("fits ({:.0f} % used)", 100 * p.peak_bytes / double(device_bytes)).c_str()
                       : "DOES NOT FIT");
  }
  if (!refusal.empty()) std::fprintf(stderr, "note: train here would say: %s\n", refusal.c_str());
  if (!fits) {
    std::fprintf(stderr, "WARNING: [plan] this layout does not fit: peak %s per rank > --device-memory %s "
                 "(%s short). Hint: --recompute-granularity full, --use-distributed-optimizer, "
                 "--sequence-parallel, a larger --tensor/--pipeline-model-parallel-size or a smaller "
                 "--micro-batch-size\n", human_bytes(p.peak_bytes).c_str(), human_bytes(double(device_bytes)).c_str(),
                 human_bytes(p.peak_bytes - double(device_bytes)).c_str());
    return 3;
  }
  return 0;
}

}  // namespace cs::cli
