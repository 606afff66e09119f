// The memory and time plan of a model + parallel layout, before anything is launched
// (`chuanspeed plan`, docs/operations.md "Planning a layout"). Two backends are modelled:
//  - Cpu: this repository's single-process fp32 trainer, byte for byte as Model, ParamStore and
//    AdamW allocate (every buffer is planned once and zero-filled, so it is all resident), plus a
//    measured baseline of the process itself;
//  - Gpu: Megatron-LM / AscendSpeed (what AscendSpeed's Baichuan scripts run): Megatron's bytes per parameter for
//    its mixed-precision optimizers (docs/distrib_optimizer.md), Korthikanti et al. 2022's
//    activation accounting written for a SwiGLU MLP, 1F1B in-flight micro-batches.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace cs {

enum class PlanBackend { Cpu, Gpu };
enum class PlanPrecision { Fp32, Fp16, Bf16 };

struct PlanLayout {
  int64_t tp = 1, pp = 1, world = 1;  // data-parallel size = world / (tp * pp)
  int64_t virtual_layers = 0;         // --num-layers-per-virtual-pipeline-stage (0: contiguous stages)
  int64_t micro_batch = 1, global_batch = 1;
  int64_t seq_length = 0;             // tokens per sample (<= the config's max_seq_length)
  int64_t train_iters = 0;            // sizes the CPU trainer's data indices (0: not counted)
  int64_t train_samples = 0;          // --train-samples: the indices' samples (0: train_iters x global_batch)
  // --dataloader-type cyclic keeps each rank's permutation of the train split (its shard, or all of
  // it with --no-data-sharding).
  bool cyclic = false, data_sharding = true;
  bool sequence_parallel = false, distributed_optimizer = false, flash_attention = false;
  PlanPrecision precision = PlanPrecision::Fp32;
  int cpu_threads = 1;                // OpenMP threads of the CPU trainer (OMP_NUM_THREADS)
  bool training = true;               // false: a model for eval / generate (no optimizer, no data)
};

// One line of the table: bytes per rank of the most loaded stage.
struct PlanItem {
  std::string name;
  double bytes = 0;
  std::string note;  // how it is made up
};

struct Plan {
  PlanBackend backend = PlanBackend::Cpu;
  int64_t dp = 1, num_micro = 1;  // micro-batches per iteration on each data-parallel rank
  int stage = 0;                  // the most loaded pipeline stage (0-based)
  int64_t stage_layers = 0;       // decoder layers on that stage
  int64_t params_total = 0;       // parameters of the model
  int64_t params_rank = 0;        // parameters held by one rank of that stage
  std::vector<PlanItem> items;    // summing to peak_bytes
  double peak_bytes = 0;
  // Saved activations of that stage with and without full recomputation (the one in effect is
  // among the items).
  double activations_recompute = 0, activations_no_recompute = 0;
  double flops_iter = 0;       // model FLOPs of one iteration, all ranks (model/flops.h)
  double flops_rank = 0;       // hardware FLOPs one rank executes per iteration (recompute counted)
  double bubble = 0;           // pipeline bubble fraction (p - 1) / m, / V chunks when interleaved
};

// The resident size of a `chuanspeed train` process before any model memory: the binary, its
// libraries, OpenMP / OpenBLAS thread stacks and buffers (measured: see plan.cpp).
double cpu_baseline_bytes(int threads);
// What an MPI rank adds to it (OpenMPI's libraries and shared-memory segments), measured.
double cpu_mpi_baseline_bytes();
// The largest transient packing buffer threaded OpenBLAS allocates for the model's GEMMs over n
// tokens (0 on one thread).
double cpu_blas_pack_bytes(const ModelConfig& c, double n, int threads);

// Throws UsageError on an inconsistent layout (sizes not dividing, batch not a multiple). Any
// sizes that pass ModelConfig::validate and the layout checks are planned without overflow: byte
// counts are doubles, and beyond 2^60 bytes (more than any machine holds) the CPU activations are
// scaled from one token's instead of carved exactly.
Plan make_plan(const ModelConfig& c, const PlanLayout& l, PlanBackend backend);

// Megatron's bytes per parameter for (precision, distributed optimizer) over dp ranks: model
// weights + gradients + optimizer (fp32 master weights where they are a separate copy, Adam m, v).
struct BytesPerParam {
  double weights, grads, optimizer;
};
BytesPerParam megatron_bytes_per_param(PlanPrecision p, bool distributed_optimizer, int64_t dp);

// Korthikanti et al. 2022 (Table 2), SwiGLU form: bytes of saved activations of one decoder layer
// for one micro-batch of b sequences of s tokens with 16-bit activations (x2 for fp32).
double megatron_layer_activation_bytes(const ModelConfig& c, int64_t s, int64_t b, int64_t tp,
                                       bool sequence_parallel, bool flash, PlanPrecision p);

const char* precision_name(PlanPrecision p);

}  // namespace cs
