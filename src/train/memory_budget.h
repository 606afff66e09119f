// Refusing a model that cannot be held, before anything is allocated: the CPU plan (plan.h) of
// what a command is about to allocate -- parameters and gradients (ParamStore), activations
// (Model), with train Adam's state and the sample indices too, plus any extra buffers -- against
// the memory this process may still take. One line names what is too large (the config file and
// its sizes, or the flags), what was needed and what is there. `chuanspeed plan` prints the same
// verdict. Sizes that do not even fit int64 are refused earlier, by ModelConfig::validate.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "train/plan.h"

namespace cs {

// What this process may still allocate: /proc/meminfo's MemAvailable, lowered to the headroom of
// its memory cgroup (and of every ancestor with a limit). bytes -1: unknown (not Linux).
struct AvailableMemory {
  int64_t bytes = -1;
  std::string source;  // "MemAvailable" or "the cgroup limit of /sys/fs/cgroup/..."
};
AvailableMemory available_memory();

// The least headroom (limit - usage + inactive file cache, which the kernel reclaims before it
// fails an allocation) of the memory cgroups in PROC_CGROUP (/proc/self/cgroup: v2's "0::/path",
// v1's "N:memory:/path") under CGROUP_ROOT (/sys/fs/cgroup), from the process's own up to the
// root; -1 when none has a limit. WHERE receives the folder of the tightest. In a cgroup namespace
// (a container) the path reads "/" and the root is already the container's own: levels whose
// folder is missing are skipped.
int64_t cgroup_headroom(const std::string& proc_cgroup, const std::string& cgroup_root, std::string& where);

// What a command is about to allocate, and whom to name when it does not fit.
struct MemoryRequest {
  int64_t micro_batch = 1;  // the Model's activations: micro_batch x act_seq tokens
  int64_t act_seq = 0;      // 0: the config's max_seq_length
  // train: Adam's state (sharded over dp with the distributed optimizer) and the sample indices of
  // train_iters x global_batch samples.
  bool training = false;
  int64_t global_batch = 1, train_iters = 0, dp = 1;
  // This rank's share under tensor and pipeline parallelism (the most loaded stage is planned).
  int64_t tp = 1, pp = 1;
  int64_t virtual_layers = 0;  // --num-layers-per-virtual-pipeline-stage (0: contiguous stages)
  bool sequence_parallel = false;
  bool distributed_optimizer = false;
  bool bf16 = false;            // --bf16: Precision::bf16()'s parameters, master weights and activations
  bool kv_cache = false;        // generate's: K and V of every layer for micro_batch x act_seq tokens
  // Where the config came from: a file ("DIR/config.json", ".../meta.json"; exit status 1), or
  // empty for the flags (exit status 2).
  std::string config_file;
  // What sizes the activations, as the user gave it ("--micro-batch-size 4 and --seq-length 4096"),
  // with its exit status (1 when it is a file's value) and a hint. Empty: the config's positions
  // (load_model_weights names the file).
  std::string batch_source;
  int batch_exit = 2;
  std::string batch_hint = "a smaller --micro-batch-size or --seq-length, or --recompute-granularity full";
};

// The plan of what REQ allocates (plan.h's CPU plan; no optimizer or data items unless
// training), with the KV cache when asked for.
Plan memory_plan(const ModelConfig& c, const MemoryRequest& req);

// The refusal for plan P against AVAIL, or "" when it fits (or AVAIL is unknown).
std::string memory_refusal(const ModelConfig& c, const MemoryRequest& req, const Plan& p,
                           const AvailableMemory& avail, int* exit_code = nullptr);

// Throws cs::Error (a UsageError when the flags are to blame) with memory_refusal's line when
// what REQ allocates does not fit in available_memory().
void check_memory(const ModelConfig& c, const MemoryRequest& req);

// "1.50 GiB", "12.0 MiB", "3.0 KiB", "2.00 TiB", "3.00 PiB", "0".
std::string human_bytes(double bytes);

}  // namespace cs
