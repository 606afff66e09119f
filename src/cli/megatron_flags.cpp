#include "cli/megatron_flags.h"

#include <fmt/core.h>

#include <cmath>
#include <cstdlib>
#include <iterator>
#include <tuple>

#include "core/error.h"

namespace cs::cli {

namespace {
// (flag, values it takes: 0 for a switch, -1 for one optional value, -2 for one or more)
struct Spec {
  const char* flag;
  int values;
  const char* reason;
};

// What Baichuan's architecture or this implementation already is.
constexpr Spec kAlwaysSo[] = {
    {"--swiglu", 0, "Baichuan's MLP is SwiGLU"},
    {"--untie-embeddings-and-output-weights", 0, "Baichuan's embedding and output weights are separate"},
    {"--disable-bias-linear", 0, "Baichuan's linear layers have no bias"},
    {"--no-position-embedding", 0, "no learned position table: RoPE or ALiBi"},
    {"--use-flash-attn", 0, "attention is always flash attention (tiled, no T x T matrix)"},
    {"--triangle-attn", 0, "causal attention skips the tiles above the diagonal"},
    {"--use-fused-rmsnorm", 0, "a fusion"},
    {"--no-masked-softmax-fusion", 0, "a fusion"},
    {"--attention-softmax-in-fp32", 0, "the softmax is fp32 whatever the precision"},
    {"--no-gradient-accumulation-fusion", 0, "a fusion"},
    {"--no-bias-gelu-fusion", 0, "a fusion"},
    {"--no-bias-dropout-fusion", 0, "a fusion"},
    {"--no-bias-swiglu-fusion", 0, "a fusion"},
    {"--no-rope-fusion", 0, "a fusion"},
    {"--no-persist-layer-norm", 0, "a fusion"},
    {"--no-async-tensor-model-parallel-allreduce", 0, "a GPU overlap"},
    {"--accumulate-allreduce-grads-in-fp32", 0, "gradients are fp32 and reduced in fp32"},
    {"--apply-query-key-layer-scaling", 0, "the same attention in exact arithmetic; the softmax is fp32"},
    {"--no-query-key-layer-scaling", 0, "the same attention in exact arithmetic; the softmax is fp32"},
    {"--use-mcore-models", 0, "Megatron's model implementation choice"},
    {"--use-legacy-models", 0, "Megatron's model implementation choice"},
    {"--transformer-impl", -1, "Megatron's model implementation choice"},
    {"--use-cpu-initialization", 0, "the initial weights are the same wherever they are made"},
    {"--use-checkpoint-args", 0, "--load's position scheme and key/value groups win over the flags"},
    {"--exit-on-missing-checkpoint", 0, "a --load that is not there is an error"},
    {"--exit-signal-handler", 0, "SIGTERM, SIGINT and --exit-signal always finish the step, save and exit"},
    {"--exit-signal-handler-for-training", 0, "SIGTERM, SIGINT and --exit-signal always finish the step, save and exit"},
    {"--log-throughput", 0, "the log line always has tokens/s/p and TFLOPs/p"},
    {"--log-validation-ppl-to-tensorboard", 0, "TensorBoard always gets the validation perplexity"},
    {"--log-batch-size-to-tensorboard", 0, "TensorBoard always gets the batch size"},
    {"--cross-entropy-loss-fusion", 0, "a fusion"},
    {"--check-for-nan-in-loss-and-grad", 0, "stop at the first non-finite iteration (--exit-on-nan 1; train sets it)"},
    {"--no-check-for-nan-in-loss-and-grad", 0, "non-finite iterations are counted and skipped; --exit-on-nan N stops"},
    {"--no-create-attention-mask-in-dataloader", 0, "no attention mask is made: the kernels mask as they go"},
    {"--mmap-bin-files", 0, "datasets are memory-mapped"},
    {"--deterministic-mode", 0, "a run is deterministic: the same flags and thread counts give the same bits"},
    {"--attention-backend", 1, "one attention: chuanspeed's own flash-style kernel, exact softmax in fp32"},
    {"--fp32-residual-connection", 0, "the residual stream is fp32 in every precision"},
    {"--use-precision-aware-optimizer", 0, "the optimizer keeps fp32 master weights and moments (the dtype flags "
                                           "must say fp32)"},
    {"--log-throughput-to-tensorboard", 0, "TensorBoard always gets tokens/s and TFLOPs per device"},
    {"--log-l2-norm-grad-to-tensorboard", 0, "TensorBoard gets the gradient norm (--no-log-gradient-norm-to-tensorboard "
                                             "leaves it out)"},
    {"--cross-entropy-fusion-impl", 1, "one cross entropy kernel, the logits' softmax in fp32"},
    {"--gradient-accumulation-fusion", 0, "a fusion"},
    {"--async-tensor-model-parallel-allreduce", 0, "a GPU overlap"},
    {"--apply-rope-fusion", 0, "a fusion"},
    {"--bias-swiglu-fusion", 0, "a fusion"},
    {"--use-te-rng-tracker", 0, "no dropout, so no random state in the model's forward"},
    {"--te-rng-tracker", 0, "no dropout, so no random state in the model's forward"},
};

// No effect here: named once at start-up.
constexpr Spec kNoEffect[] = {
    {"--tokenizer-not-use-fast", 0, "SentencePiece is the only tokenizer"},
    {"--DDP-impl", -1, "data parallelism is chuanspeed's own: gradients summed per layer over the ranks"},
    {"--distributed-backend", -1, "ranks communicate over MPI, set up by the launcher (mpirun, srun)"},
    {"--no-pipeline-parallel", 0, "DeepSpeed's pipeline engine: the pipeline size is --pipeline-model-parallel-size"},
    {"--deepspeed-activation-checkpointing", 0, "activation recomputation is --recompute-granularity full"},
    {"--overlap-grad-reduce", 0, "the data-parallel gradient reduction is chuanspeed's own"},
    {"--overlap-param-gather", 0, "the distributed optimizer's parameter gather is chuanspeed's own"},
    {"--num-workers", -1, "the training loop reads samples from the memory-mapped dataset itself"},
    {"--timing-log-level", -1, "the log line's time per iteration is the timer"},
    {"--log-timers-to-tensorboard", 0, "TensorBoard gets the log line's figures"},
    {"--log-memory-to-tensorboard", 0, "the peak memory is printed once, after the first logged iteration"},
    {"--tensorboard-log-interval", -1, "TensorBoard scalars are written every --log-interval"},
    {"--tensorboard-queue-size", -1, "TensorBoard events are written and flushed at every log interval"},
    {"--log-progress", 0, "the heartbeat (heartbeat.json) and metrics.jsonl record the progress"},
    {"--log-optimizer-states-to-tensorboard", 0, "TensorBoard gets the log line's figures"},
    {"--manual-gc-interval", -1, "there is no garbage collector"},
    {"--wandb-project", -1, "Weights & Biases is not used: metrics.jsonl and TensorBoard hold the figures"},
    {"--wandb-exp-name", -1, "Weights & Biases is not used"},
    {"--wandb-save-dir", -1, "Weights & Biases is not used"},
    {"--empty-unused-memory-level", -1, "memory is planned once per run"},
    {"--manual-gc", 0, "there is no garbage collector"},
    {"--ckpt-format", -1, "checkpoints are chuanspeed's native format (convert writes Hugging Face's)"},
    {"--num-dataset-builder-threads", -1, "the sample indices are built by one thread, cached beside the data"},
    {"--ckpt-fully-parallel-save", 0, "each rank writes its own shard files"},
    {"--ckpt-fully-parallel-load", 0, "each rank reads what it needs"},
    {"--async-save", 0, "checkpoints are written when the step ends"},
    {"--fp16-lm-cross-entropy", 0, "the cross entropy is always computed in fp32"},
    {"--no-mmap-bin-files", 0, "datasets are memory-mapped: the same tokens"},
    {"--no-initialization", 0, "the initial weights are always made (a --load then replaces them)"},
    {"--profile", 0, "no profiler is built in: run perf or Nsight Systems on the process; the log line times each "
                     "iteration"},
    {"--use-pytorch-profiler", 0, "there is no PyTorch here"},
    {"--profile-step-start", 1, "no profiler is built in"},
    {"--profile-step-end", 1, "no profiler is built in"},
    {"--profile-ranks", -2, "no profiler is built in"},
    {"--log-straggler", 0, "the ranks' step times are not compared"},
    {"--log-energy", 0, "GPU energy is not measured"},
    {"--use-dist-ckpt", 0, "checkpoints are chuanspeed's native format (convert writes Hugging Face's)"},
    {"--auto-detect-ckpt-format", 0,
     "--load reads a native checkpoint, a Hugging Face directory or a Megatron-LM checkpoint, whichever it is"},
    {"--overlap-p2p-communication", 0, "the pipeline's sends and receives are chuanspeed's own"},
    {"--no-overlap-p2p-communication", 0, "the pipeline's sends and receives are chuanspeed's own"},
    {"--ddp-bucket-size", 1, "gradients are summed over the data-parallel ranks layer by layer"},
    {"--ddp-num-buckets", 1, "gradients are summed over the data-parallel ranks layer by layer"},
    {"--ddp-pad-buckets-for-high-nccl-busbw", 0, "gradients are summed over the data-parallel ranks layer by layer"},
    {"--ddp-average-in-collective", 0, "the gradients are summed, then scaled once (the same mean)"},
    {"--no-gradient-reduce-div-fusion", 0, "the gradients are summed, then scaled once (the same mean)"},
    {"--no-align-param-gather", 0, "the distributed optimizer's parameter gather is chuanspeed's own"},
    {"--overlap-param-gather-with-optimizer-step", 0, "the distributed optimizer's parameter gather is chuanspeed's own"},
    {"--no-pin-cpu-grads", 0, "no pinned host memory is used"},
    {"--no-pin-cpu-params", 0, "no pinned host memory is used"},
    {"--grad-reduce-in-bf16", 0, "gradients are reduced in fp32, as they are kept"},
    {"--check-for-large-grads", 0, "non-finite gradients are found and the step skipped; large finite ones are not "
                                   "looked for"},
    {"--calc-ft-timeouts", 0, "NVIDIA's fault-tolerance package is not used: chuanspeed pulse watches the run"},
    {"--enable-ft-package", 0, "NVIDIA's fault-tolerance package is not used: chuanspeed pulse watches the run"},
    {"--no-one-logger", 0, "NVIDIA's one-logger is not used"},
    {"--one-logger-project", 1, "NVIDIA's one-logger is not used"},
    {"--one-logger-run-name", 1, "NVIDIA's one-logger is not used"},
    {"--one-logger-async", 0, "NVIDIA's one-logger is not used"},
    {"--disable-msc", 0, "files are read from the file system (no multi-storage client)"},
    {"--dataloader-defer-npy-index-mmap", 0, "the sample indices are mapped when the run starts"},
    {"--dataloader-fast-cache-load", 0, "the sample indices are mapped from their cache when it is there"},
    {"--log-runtime-to-tensorboard", 0, "TensorBoard gets the log line's figures"},
    {"--log-device-memory-used", 0, "the peak memory is printed once, after the first logged iteration"},
    {"--log-memory-interval", 1, "the peak memory is printed once, after the first logged iteration"},
    {"--timing-log-option", 1, "the log line's time per iteration is the timer"},
    {"--logging-level", 1, "the log has one level"},
    {"--nvtx-ranges", 0, "no NVTX ranges are emitted"},
    {"--use-nsys-profiler", 0, "no profiler is built in: run Nsight Systems on the process"},
    {"--record-memory-history", 0, "there is no PyTorch allocator history"},
    {"--memory-snapshot-path", 1, "there is no PyTorch allocator history"},
    {"--check-for-spiky-loss", 0, "losses are not checked for spikes (non-finite ones are: --exit-on-nan)"},
    {"--rerun-mode", 1, "Megatron's rerun state machine is not built"},
    {"--exit-signal-handler-for-dataloader", 0, "the training loop reads samples itself, with no loader workers"},
    {"--tokenizer-hf-no-use-fast", 0, "SentencePiece is the only tokenizer"},
    {"--train-sync-interval", 1, "the CPU and the device synchronise once per iteration"},
    {"--disable-straggler-on-startup", 0, "the ranks' step times are not compared"},
    {"--straggler-ctrlr-port", 1, "the ranks' step times are not compared"},
    {"--straggler-minmax-count", 1, "the ranks' step times are not compared"},
    {"--no-use-gloo-process-groups", 0, "ranks communicate over MPI"},
    {"--disable-jit-fuser", 0, "there is no JIT"},
    {"--no-manual-gc-eval", 0, "there is no garbage collector"},
    {"--throughput-window-size", 1, "throughput is averaged over each --log-interval"},
    {"--non-persistent-save-interval", 1, "only --save-interval checkpoints are written (and on a signal or an exit "
                                          "flag)"},
    {"--non-persistent-ckpt-type", 1, "only --save-interval checkpoints are written"},
    {"--non-persistent-global-ckpt-dir", 1, "only --save-interval checkpoints are written"},
    {"--non-persistent-local-ckpt-dir", 1, "only --save-interval checkpoints are written"},
    {"--cp-comm-type", -2, "context parallelism is not built (--context-parallel-size 1)"},
    {"--tp-comm-overlap", 0, "the tensor-parallel collectives are chuanspeed's own"},
    {"--defer-embedding-wgrad-compute", 0, "the embedding's weight gradient is computed in its backward"},
    {"--wgrad-deferral-limit", 1, "the embedding's weight gradient is computed in its backward"},
    {"--init-model-with-meta-device", 0, "the model is allocated once, planned before it is built"},
    {"--dist-ckpt-strictness", 1, "checkpoints are chuanspeed's native format, read strictly"},
    {"--ckpt-assume-constant-structure", 0, "checkpoints are chuanspeed's native format"},
};

// Architectures and schedules not built: one line.
constexpr Spec kRefused[] = {
    {"--squared-relu", 0, "Baichuan's MLP is SwiGLU, the only MLP built here"},
    {"--openai-gelu", 0, "Baichuan's MLP is SwiGLU, the only MLP built here"},
    {"--add-bias-linear", 0, "Baichuan's linear layers have no bias, and none is built here"},
    {"--add-qkv-bias", 0, "Baichuan's attention projections have no bias, and none is built here"},
    {"--apply-layernorm-1p", 0, "Baichuan's RMSNorm scales by its weight (not 1 + weight), the only norm built here"},
    {"--qk-layernorm", 0, "Baichuan normalises no queries or keys, and no such norm is built here"},
    {"--apply-residual-connection-post-layernorm", 0, "Baichuan is pre-norm, the only layout built here"},
    {"--fp8-format", -1, "fp8 is not supported here; use --bf16 or --fp16"},
    {"--account-for-embedding-in-pipeline-split", 0,
     "each pipeline stage holds --num-layers / PP decoder layers (the first the embedding too, the last the loss)"},
    {"--account-for-loss-in-pipeline-split", 0,
     "each pipeline stage holds --num-layers / PP decoder layers (the first the embedding too, the last the loss)"},
    {"--decoupled-lr", 1, "one learning rate schedule for every parameter is built here"},
    {"--decoupled-min-lr", 1, "one learning rate schedule for every parameter is built here"},
    {"--init-method-xavier-uniform", 0, "the weights start from Megatron's normal initialisation (--seed)"},
    {"--decoder-first-pipeline-num-layers", 1,
     "each pipeline stage holds --num-layers / PP decoder layers (use --pipeline-model-parallel-size alone)"},
    {"--decoder-last-pipeline-num-layers", 1,
     "each pipeline stage holds --num-layers / PP decoder layers (use --pipeline-model-parallel-size alone)"},
    {"--pipeline-model-parallel-layout", 1,
     "each pipeline stage holds --num-layers / PP decoder layers (for interleaving: "
     "--num-virtual-stages-per-pipeline-rank or --num-layers-per-virtual-pipeline-stage)"},
    {"--use-rope-scaling", 0, "Baichuan's RoPE is not scaled, and no scaling is built here"},
    {"--fp8-recipe", 1, "fp8 is not supported here; use --bf16 or --fp16"},
    {"--fp8-param-gather", 0, "fp8 is not supported here; use --bf16 or --fp16"},
    {"--first-last-layers-bf16", 0, "fp8 is not supported here (every layer runs in --bf16 or --fp16)"},
    {"--use-torch-fsdp2", 0, "FSDP is not built: --use-distributed-optimizer (ZeRO-1) shards the optimizer state"},
    {"--use-megatron-fsdp", 0, "FSDP is not built: --use-distributed-optimizer (ZeRO-1) shards the optimizer state"},
    {"--data-parallel-sharding-strategy", 1,
     "FSDP is not built: --use-distributed-optimizer (ZeRO-1) shards the optimizer state"},
    {"--qk-l2-norm", 0, "Baichuan normalises no queries or keys, and no such norm is built here"},
    {"--window-size", -2, "Baichuan's attention is causal over the whole sequence; no sliding window is built here"},
    {"--sft", 0, "Megatron's SFT dataset reads its own JSONL format; instruction data here is preprocess "
                 "--is-instruction-dataset, trained with --is-instruction-dataset"},
    {"--batch-size", 1, "Megatron's old flag, which it refuses too: the batch is --micro-batch-size (and "
                        "--global-batch-size)"},
    {"--warmup", 1, "Megatron's old flag, which it refuses too: the warmup is --lr-warmup-fraction, "
                    "--lr-warmup-iters or --lr-warmup-samples"},
    {"--model-parallel-size", 1, "Megatron's old flag, which it refuses too: the tensor-parallel size is "
                                 "--tensor-model-parallel-size"},
    {"--mock-data", 0, "no mock data set is built in; chuanspeed synth-data writes a synthetic dataset for "
                       "--data-path"},
    {"--vocab-file", 1, "GPT-2 BPE vocabularies are not supported; Baichuan's tokenizer is SentencePiece "
                        "(--tokenizer-name-or-path)"},
    {"--merge-file", 1, "GPT-2 BPE vocabularies are not supported; Baichuan's tokenizer is SentencePiece "
                        "(--tokenizer-name-or-path)"},
};

void add(CLI::App& app, const Spec& s, std::vector<std::string>& sink) {
  if (s.values == 0)
    app.add_flag(s.flag, s.reason);
  else
    app.add_option(s.flag, sink, s.reason)
        ->expected(s.values == -1 ? 0 : s.values == -2 ? 1 : s.values,
                   s.values == -1 ? 1 : s.values == -2 ? CLI::detail::expected_max_vector_size : s.values)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
}

// Flags whose only value here is Megatron's default (Baichuan's, or what this program keeps).
struct Pinned {
  const char* flag;
  const char* value;
  const char* reason;
};
constexpr Pinned kPinned[] = {
    {"--rotary-base", "10000", "Baichuan's RoPE base (10000) is the one built here"},
    {"--rotary-seq-len-interpolation-factor", "1", "positions are not interpolated"},
    {"--main-grads-dtype", "fp32", "gradients are fp32"},
    {"--main-params-dtype", "fp32", "the master weights are fp32"},
    {"--exp-avg-dtype", "fp32", "Adam's moments are fp32"},
    {"--exp-avg-sq-dtype", "fp32", "Adam's moments are fp32"},
    {"--mid-level-dataset-surplus", "0.005", "a blend's datasets are built with Megatron's default surplus"},
    {"--context-parallel-size", "1", "context parallelism is not built (--sequence-parallel splits the norms and the "
                                     "residual stream over the tensor-parallel ranks)"},
    {"--expert-model-parallel-size", "1", "Baichuan has no experts (no mixture of experts is built here)"},
    {"--expert-tensor-parallel-size", "1", "Baichuan has no experts (no mixture of experts is built here)"},
    {"--softmax-type", "vanilla", "the attention's softmax is the plain one"},
};

// Whether A and B are the same value: as numbers when both are, else as text.
bool same_value(const std::string& a, const std::string& b) {
  char* end_a = nullptr;
  char* end_b = nullptr;
  const double x = std::strtod(a.c_str(), &end_a), y = std::strtod(b.c_str(), &end_b);
  if (!a.empty() && !b.empty() && *end_a == 0 && *end_b == 0) return x == y;
  return a == b;
}
}  // namespace

void MegatronFlags::add_to(CLI::App& app) {
  for (const Spec& s : kAlwaysSo) add(app, s, sink_);
  for (const Spec& s : kNoEffect) {
    add(app, s, sink_);
    noted_.push_back({s.flag, s.reason});
  }
  for (const Spec& s : kRefused) {
    add(app, s, sink_);
    refused_.push_back(s.flag);
  }
  pinned_.resize(std::size(kPinned));
  for (size_t i = 0; i < std::size(kPinned); ++i)
    app.add_option(kPinned[i].flag, pinned_[i], fmt::format("{} only ({})", kPinned[i].value, kPinned[i].reason));
  app.add_flag("--use-rotary-position-embeddings", use_rotary_, "RoPE (as --position-embedding-type rope)");
  app.add_option("--rotary-percent", rotary_percent_, "rotated share of each head: 1 (Baichuan rotates all of it)");
  app.add_option("--norm-epsilon,--layernorm-epsilon", norm_epsilon_, "RMSNorm epsilon (Baichuan's: 1e-6)")
      ->check(CLI::PositiveNumber);
  app.add_flag("--group-query-attention", group_query_attention_,
               "with --num-query-groups equal to the heads (Baichuan's attention); alone it means one key/value head");
  app.add_option("--num-query-groups", num_query_groups_, "with --group-query-attention: key/value heads, the attention "
                 "heads here (Baichuan's attention); ignored without it, as in Megatron");
  app.add_option("--data-impl", data_impl_, "mmap (or infer): the MMIDIDX format, the only one")
      ->check(CLI::IsMember({"mmap", "infer"}));
  app.add_option("--optimizer", optimizer_, "adam: Megatron's Adam with decoupled weight decay (AdamW), the only one")
      ->check(CLI::IsMember({"adam"}));
  app.add_option("--kv-channels", kv_channels_, "head dim: hidden size / heads");
}

void MegatronFlags::check(const CLI::App& app, std::optional<std::string>& position) const {
  for (const Spec& s : kRefused)
    if (app.count(s.flag) > 0)
      throw UsageError(fmt::format("{}: {}. Hint: leave the flag out", s.flag, s.reason));
  for (size_t i = 0; i < std::size(kPinned); ++i)
    if (pinned_[i] && !same_value(*pinned_[i], kPinned[i].value))
      throw UsageError(fmt::format("{} {}: {}; expected {}. Hint: leave the flag out", kPinned[i].flag, *pinned_[i],
                                   kPinned[i].reason, kPinned[i].value));
  if (rotary_percent_ && *rotary_percent_ != 1.0)
    throw UsageError(fmt::format("--rotary-percent {}: Baichuan rotates the whole head; expected 1.0", *rotary_percent_));
  if (use_rotary_) {
    if (position && *position != "rope")
      throw UsageError(fmt::format("--use-rotary-position-embeddings with --position-embedding-type {}: "
                                   "expected one position scheme. Hint: keep one of the two", *position));
    position = "rope";
  }
}

void MegatronFlags::apply(ModelConfig& c) const {
  if (norm_epsilon_) c.rms_norm_eps = *norm_epsilon_;
}

void MegatronFlags::check_model(const ModelConfig& c, bool groups_from_checkpoint) const {
  if (norm_epsilon_ && *norm_epsilon_ != c.rms_norm_eps)
    throw UsageError(fmt::format("--norm-epsilon {} differs from the model's RMSNorm epsilon {} (from --load). "
                                 "Hint: leave the flag out, or pass {}", *norm_epsilon_, c.rms_norm_eps, c.rms_norm_eps));
  // Megatron reads --num-query-groups (default 1) only with --group-query-attention.
  if (group_query_attention_ && !groups_from_checkpoint && num_query_groups_.value_or(1) != c.num_heads)
    throw UsageError(fmt::format("--group-query-attention with --num-query-groups {}: Baichuan's attention has one "
                                 "key/value head per query head; expected --num-query-groups {} (--num-attention-heads)",
                                 num_query_groups_.value_or(1), c.num_heads));
  if (kv_channels_ && *kv_channels_ * c.num_heads != c.hidden_size)
    throw UsageError(fmt::format("--kv-channels {}: the head dim is the hidden size over the heads; expected {} "
                                 "({} / {})", *kv_channels_, c.hidden_size / c.num_heads, c.hidden_size, c.num_heads));
}

std::vector<std::string> MegatronFlags::notes(const CLI::App& app) const {
  std::vector<std::string> out;
  for (const Noted& n : noted_)
    if (app.count(n.flag) > 0) out.push_back(fmt::format("accepted, no effect here: {} ({})", n.flag, n.reason));
  return out;
}

}  // namespace cs::cli
