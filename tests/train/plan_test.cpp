// chuanspeed plan: the CPU buffers against the Model's own allocation, the Megatron (GPU) model's
// parameter counts and scaling with TP / PP / DP / ZeRO / SP, Korthikanti's formula, step time,
// and bad flags. (The CPU prediction against real runs' peak RSS: plan_rss_test.cpp.)
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "cli/run_util.h"
#include "model/flops.h"
#include "model/model.h"
#include "parallel/group.h"
#include "train/interleaved.h"
#include "train/plan.h"
#include "device_env.h"

namespace cs {
namespace {
namespace fs = std::filesystem;

nlohmann::json plan_json(const std::string& args) {
  const test::RunResult r = test::run_binary("plan " + args + " --json");
  EXPECT_EQ(r.status, 0) << r.err;
  return nlohmann::json::parse(r.out);
}

ModelConfig small_cfg(bool recompute) {
  ModelConfig c = model_preset("demo");
  c.vocab_size = 512;
  c.num_layers = 3;
  c.recompute = recompute;
  return c;
}

// One rank of a data-parallel CPU job: the same buffers, the micro-batches shared over the ranks,
// and with the distributed optimizer a 1/DP shard of the Adam state (AdamW's shard of the padded
// buffer).
TEST(Plan, CpuDataParallelRankAndItsOptimizerShard) {
  const ModelConfig c = small_cfg(false);
  PlanLayout l;
  l.micro_batch = 2;
  l.global_batch = 8;
  l.seq_length = c.max_seq_length;
  l.world = 4;
  const Plan whole = make_plan(c, l, PlanBackend::Cpu);
  EXPECT_EQ(whole.dp, 4);
  EXPECT_EQ(whole.num_micro, 1);
  l.distributed_optimizer = true;
  const Plan sharded = make_plan(c, l, PlanBackend::Cpu);
  auto optim = [](const Plan& p) {
    for (const PlanItem& it : p.items)
      if (it.name == "optimizer states") return it.bytes;
    return -1.0;
  };
  const double np = double(c.num_params());
  EXPECT_EQ(optim(whole), np * 8);
  EXPECT_EQ(optim(sharded), std::ceil(np / 4) * 8);
  l.tp = 2;  // a tensor-parallel rank holds its slices: less than the whole model, more than half
  const Plan tp2 = make_plan(c, l, PlanBackend::Cpu);
  EXPECT_LT(tp2.params_rank, tp2.params_total);
  EXPECT_GT(2 * tp2.params_rank, tp2.params_total);
}

// The data line counts 24 bytes of mapped indices per train sample (--train-samples itself when
// given: a rampup's iterations take fewer samples each), and with --dataloader-type cyclic each
// rank's permutation of its shard (of the whole split with --no-data-sharding), 8 bytes an entry.
TEST(Plan, CpuDataIndicesFollowTheSamplesAndTheOrder) {
  const ModelConfig c = small_cfg(false);
  PlanLayout l;
  l.micro_batch = 2;
  l.global_batch = 8;
  l.seq_length = c.max_seq_length;
  l.world = 4;
  l.train_iters = 1000;
  auto data = [&] {
    for (const PlanItem& it : make_plan(c, l, PlanBackend::Cpu).items)
      if (it.name == "data") return it.bytes;
    return -1.0;
  };
  const double by_iters = data();
  l.train_samples = 6000;  // e.g. a rampup's 1000 iterations
  EXPECT_EQ(by_iters - data(), 24.0 * (8000 - 6000));
  const double single = data();
  l.cyclic = true;
  EXPECT_EQ(data() - single, 8.0 * 6000 / 4);
  l.data_sharding = false;
  EXPECT_EQ(data() - single, 8.0 * 6000);
}

TEST(Plan, CpuBuffersEqualTheModelsAllocation) {
  for (int recompute : {0, 1, 2}) {  // none, every layer, the first 2 layers (block)
    ModelConfig c = small_cfg(recompute > 0);
    if (recompute == 2) c.recompute_num_layers = 2;
    SingleGroup tp("tp");
    Model m(c, test::cpu_ctx(), tp, 3, c.max_seq_length);
    PlanLayout l;
    l.micro_batch = 3;
    l.global_batch = 6;
    l.seq_length = c.max_seq_length;
    const Plan p = make_plan(c, l, PlanBackend::Cpu);
    auto item = [&](const std::string& name) {
      for (const PlanItem& it : p.items)
        if (it.name == name) return it.bytes;
      ADD_FAILURE() << "no item " << name;
      return 0.0;
    };
    EXPECT_EQ(p.params_total, m.params().numel());
    EXPECT_EQ(item("parameters"), double(m.params().numel()) * 4);
    EXPECT_EQ(item("optimizer states"), double(m.params().numel()) * 8);
    EXPECT_EQ(item("activations"), double(m.activation_bytes())) << "recompute " << recompute;
    EXPECT_LT(p.activations_recompute, p.activations_no_recompute);
    EXPECT_EQ(p.flops_iter, model_flops(c, 6, c.max_seq_length));
  }
}

// Two pipeline stages of a 4-layer model, 4 micro-batches of 1.
PlanLayout two_stages(const ModelConfig& c) {
  PlanLayout l;
  l.pp = 2;
  l.world = 2;
  l.micro_batch = 1;
  l.global_batch = 4;
  l.seq_length = c.max_seq_length;
  return l;
}

// A pipeline stage's activations: its layers, its micro-batches in flight under 1F1B (PP - stage),
// the head on the last stage only; planned as the Model carves them for that shard.
TEST(Plan, CpuPipelineStageHoldsItsMicroBatchesInFlight) {
  ModelConfig c = small_cfg(false);
  c.num_layers = 4;
  const PlanLayout l = two_stages(c);
  const Plan p = make_plan(c, l, PlanBackend::Cpu);
  SingleGroup tp("tp");
  Model first(c, test::cpu_ctx(), tp, 1, c.max_seq_length, ModelShard::stage(c, 0, 2), Precision{}, 2);
  Model last(c, test::cpu_ctx(), tp, 1, c.max_seq_length, ModelShard::stage(c, 1, 2), Precision{}, 1);
  const double want = double(std::max(first.activation_bytes() + size_t(first.params().numel()) * 16,
                                      last.activation_bytes() + size_t(last.params().numel()) * 16));
  double got = 0;
  for (const PlanItem& it : p.items)
    if (it.name == "activations" || it.name == "parameters" || it.name == "gradients" || it.name == "optimizer states")
      got += it.bytes;
  EXPECT_EQ(got, want);
  EXPECT_EQ(p.stage_layers, 2);
}

// Interleaved (--num-layers-per-virtual-pipeline-stage 1, PP2, 4 layers: 2 chunks of 1 layer per
// rank): each chunk's activations with the interleaved schedule's slots, as the Model carves them;
// the bubble divided by the chunks; the gpu plan, which does not model chunks, refuses in one line,
// and so does a micro-batch count that is not a multiple of PP.
TEST(Plan, CpuInterleavedStageHoldsEveryChunksSlots) {
  ModelConfig c = small_cfg(false);
  c.num_layers = 4;
  PlanLayout l = two_stages(c);
  l.virtual_layers = 1;
  const Plan p = make_plan(c, l, PlanBackend::Cpu);
  SingleGroup tp("tp");
  const int64_t slots = interleaved_slots(2, 2, 4);
  double want = 0;
  for (int st = 0; st < 2; ++st) {
    Model m(c, test::cpu_ctx(), tp, 1, c.max_seq_length, ModelShard::stage(c, st, 2, 0, 1, 2), Precision{}, slots);
    want = std::max(want, double(m.activation_bytes() + size_t(m.params().numel()) * 16));
  }
  double got = 0;
  for (const PlanItem& it : p.items)
    if (it.name == "activations" || it.name == "parameters" || it.name == "gradients" || it.name == "optimizer states")
      got += it.bytes;
  EXPECT_EQ(got, want);
  EXPECT_DOUBLE_EQ(p.bubble, 1.0 / 4 / 2);
  EXPECT_THROW(make_plan(c, l, PlanBackend::Gpu), UsageError);
  l.global_batch = 3;
  EXPECT_THROW(make_plan(c, l, PlanBackend::Cpu), UsageError);
}

TEST(Plan, GlobalBatchBelowOneIsRefused) {
  for (int64_t gb : {0, -2})
    for (PlanBackend b : {PlanBackend::Cpu, PlanBackend::Gpu}) {
      PlanLayout l;
      l.global_batch = gb;
      l.seq_length = 128;
      EXPECT_THROW(make_plan(small_cfg(false), l, b), UsageError) << gb;
    }
}

PlanLayout gpu_layout(int64_t tp, int64_t pp, int64_t dp) {
  PlanLayout l;
  l.tp = tp;
  l.pp = pp;
  l.world = tp * pp * dp;
  l.micro_batch = 1;
  l.global_batch = 8 * dp;
  l.seq_length = 4096;
  l.precision = PlanPrecision::Fp16;
  return l;
}

double item_bytes(const Plan& p, const std::string& name) {
  for (const PlanItem& it : p.items)
    if (it.name == name) return it.bytes;
  return -1;
}

TEST(Plan, GpuParameterCountsSplitOverTensorAndPipeline) {
  ModelConfig c = model_preset("baichuan-7b");
  c.vocab_size = padded_vocab_size(64000, 128, 8);
  EXPECT_EQ(make_plan(c, gpu_layout(1, 1, 1), PlanBackend::Gpu).params_rank, c.num_params());
  const int64_t d = c.hidden_size, f = c.ffn_hidden_size, v = c.vocab_size, L = c.num_layers;
  EXPECT_EQ(make_plan(c, gpu_layout(8, 1, 1), PlanBackend::Gpu).params_rank,
            L * ((4 * d * d + 3 * d * f) / 8 + 2 * d) + 2 * v * d / 8 + d);
  // PP 4: the most loaded stage is the first or the last (embedding or head + logits), each with
  // a quarter of the layers.
  const Plan p4 = make_plan(c, gpu_layout(1, 4, 1), PlanBackend::Gpu);
  EXPECT_EQ(p4.stage_layers, L / 4);
  EXPECT_TRUE(p4.params_rank == L / 4 * (4 * d * d + 3 * d * f + 2 * d) + v * d ||
              p4.params_rank == L / 4 * (4 * d * d + 3 * d * f + 2 * d) + v * d + d);
}

TEST(Plan, GpuBytesScaleWithLayout) {
  const ModelConfig c = model_preset("baichuan-13b");
  const Plan base = make_plan(c, gpu_layout(1, 1, 1), PlanBackend::Gpu);
  // Megatron's table: fp16 20 bytes per parameter, 4 + 16/d with the distributed optimizer.
  EXPECT_EQ(item_bytes(base, "parameters") + item_bytes(base, "gradients") + item_bytes(base, "optimizer states"),
            20.0 * double(base.params_rank));
  PlanLayout z = gpu_layout(1, 1, 4);
  const Plan no_zero = make_plan(c, z, PlanBackend::Gpu);
  z.distributed_optimizer = true;
  const Plan zero = make_plan(c, z, PlanBackend::Gpu);
  EXPECT_DOUBLE_EQ(item_bytes(zero, "optimizer states") * 4, item_bytes(no_zero, "optimizer states"));
  EXPECT_EQ(item_bytes(zero, "parameters"), item_bytes(no_zero, "parameters"));
  // TP 8 with sequence parallelism divides every activation by 8; without it some stay replicated.
  PlanLayout t8 = gpu_layout(8, 1, 1);
  const Plan no_sp = make_plan(c, t8, PlanBackend::Gpu);
  t8.sequence_parallel = true;
  const Plan sp = make_plan(c, t8, PlanBackend::Gpu);
  EXPECT_DOUBLE_EQ(sp.activations_no_recompute * 8, base.activations_no_recompute);
  EXPECT_GT(no_sp.activations_no_recompute, sp.activations_no_recompute * 1.2);
  EXPECT_LT(item_bytes(sp, "parameters") * 7, item_bytes(base, "parameters"));
  // Recomputation keeps 2sbh per layer (+ one layer rebuilt): far less.
  EXPECT_LT(sp.activations_recompute * 10, sp.activations_no_recompute);
  // 1F1B: the first of 4 stages holds 4 micro-batches of its L/4 layers = L layers' worth of one.
  const Plan pp4 = make_plan(c, gpu_layout(1, 4, 1), PlanBackend::Gpu);
  const double per_layer = megatron_layer_activation_bytes(c, 4096, 1, 1, false, false, PlanPrecision::Fp16);
  if (pp4.stage == 0) {
    EXPECT_DOUBLE_EQ(pp4.activations_no_recompute, double(c.num_layers) * per_layer);
  }
  EXPECT_DOUBLE_EQ(pp4.bubble, 3.0 / 8.0);
}

TEST(Plan, KorthikantiFormulaForAGptShapedMlp) {
  ModelConfig c = model_preset("small");
  c.hidden_size = 384;
  c.ffn_hidden_size = 1024;  // 8h/3: SwiGLU's three matrices of width F save what GeLU's 4h does
  c.num_heads = 6;
  const double s = 512, b = 2, h = 384, a = 6;
  EXPECT_DOUBLE_EQ(megatron_layer_activation_bytes(c, 512, 2, 1, false, false, PlanPrecision::Fp16),
                   s * b * h * (34 + 5 * a * s / h));
  EXPECT_DOUBLE_EQ(megatron_layer_activation_bytes(c, 512, 2, 4, false, false, PlanPrecision::Fp16),
                   s * b * h * (10 + 24 / 4.0 + 5 * a * s / (h * 4)));
  EXPECT_DOUBLE_EQ(megatron_layer_activation_bytes(c, 512, 2, 4, true, false, PlanPrecision::Fp16),
                   s * b * h / 4 * (34 + 5 * a * s / h));
  EXPECT_LT(megatron_layer_activation_bytes(c, 512, 2, 1, false, true, PlanPrecision::Fp16),
            s * b * h * 35);  // flash: no s^2 term
}

TEST(Plan, MegatronBytesPerParameter) {
  auto total = [](BytesPerParam b) { return b.weights + b.grads + b.optimizer; };
  EXPECT_EQ(total(megatron_bytes_per_param(PlanPrecision::Fp16, false, 8)), 20);
  EXPECT_EQ(total(megatron_bytes_per_param(PlanPrecision::Bf16, false, 8)), 18);
  EXPECT_EQ(total(megatron_bytes_per_param(PlanPrecision::Fp32, false, 8)), 16);
  EXPECT_EQ(total(megatron_bytes_per_param(PlanPrecision::Fp16, true, 8)), 4 + 16.0 / 8);
  EXPECT_EQ(total(megatron_bytes_per_param(PlanPrecision::Bf16, true, 8)), 6 + 12.0 / 8);
  EXPECT_EQ(total(megatron_bytes_per_param(PlanPrecision::Fp32, true, 8)), 8 + 8.0 / 8);
}

const char* kSeed7b = "--model baichuan-7b --tensor-model-parallel-size 8 --pipeline-model-parallel-size 1 "
                      "--sequence-parallel --seq-length 4096 --micro-batch-size 1 --global-batch-size 8 "
                      "--fp16 --world-size 8";

TEST(PlanCli, StepTimeAndDeviceMemory) {
  const nlohmann::json j = plan_json(std::string(kSeed7b) + " --gemm-tflops 200 --device-memory 80GB");
  EXPECT_EQ(j["backend"], "gpu");
  EXPECT_EQ(j["fits"], true);
  EXPECT_DOUBLE_EQ(j["step_s"].get<double>(), j["flops_rank"].get<double>() / 200e12);
  EXPECT_DOUBLE_EQ(j["flops_rank"].get<double>() * 8, j["flops_iter"].get<double>());
  const test::RunResult r = test::run_binary(std::string("plan ") + kSeed7b + " --device-memory 16GB");
  EXPECT_EQ(r.status, 3) << r.err;
  EXPECT_EQ(test::count_matching_lines(r.err, "WARNING: [plan] this layout does not fit"), 1) << r.err;
  EXPECT_NE(r.out.find("DOES NOT FIT"), std::string::npos);
}

TEST(PlanCli, AcceptsEveryTrainFlag) {
  // The seed script's flag list (paths that do not exist here) with the vocabulary given.
  const test::RunResult r = test::run_binary(
      "plan --tensor-model-parallel-size 8 --pipeline-model-parallel-size 1 --sequence-parallel "
      "--num-layers 40 --hidden-size 5120 --ffn-hidden-size 13696 --num-attention-heads 40 "
      "--tokenizer-type Llama2Tokenizer --tokenizer-model /nonexistent/tokenizer.model --load /nonexistent/ckpt "
      "--seq-length 4096 --max-position-embeddings 4096 --micro-batch-size 1 --global-batch-size 8 "
      "--make-vocab-size-divisible-by 128 --lr 1e-5 --train-iters 5000 --lr-decay-style cosine "
      "--untie-embeddings-and-output-weights --disable-bias-linear --attention-dropout 0.0 "
      "--init-method-std 0.01 --hidden-dropout 0.0 --position-embedding-type alibi --normalization RMSNorm "
      "--use-fused-rmsnorm --swiglu --no-masked-softmax-fusion --attention-softmax-in-fp32 --min-lr 1e-6 "
      "--weight-decay 1e-1 --lr-warmup-fraction 0.1 --clip-grad 1.0 --adam-beta1 0.9 "
      "--initial-loss-scale 8188.0 --adam-beta2 0.95 --no-gradient-accumulation-fusion --no-load-optim "
      "--no-load-rng --fp16 --data-path x --split 949,50,1 --log-interval 1 --save-interval 1000 "
      "--eval-interval 1000 --eval-iters 0 --distributed-backend nccl --save ckpt --vocab-size 64000");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("vocab 64512"), std::string::npos) << r.out;  // padded to 128 x TP 8
  EXPECT_NE(r.out.find("TP 8 x PP 1 x DP 1 = 8 ranks"), std::string::npos) << r.out;
}

// --load's vocabulary is padded as Megatron pads it for tensor parallelism (100 -> 256 for TP 2
// with divisible-by 128), and kept as the checkpoint has it on one rank.
TEST(PlanCli, LoadedVocabularyIsPaddedForTensorParallelism) {
  const std::string d = ::testing::TempDir() + "/cs_plan_load_" + std::to_string(getpid());
  fs::remove_all(d);
  ASSERT_EQ(0, test::run_binary("init --model tiny --num-attention-heads 4 --vocab-size 100 "
                                "--make-vocab-size-divisible-by 1 --save " + d).status);
  const nlohmann::json one = plan_json("--load " + d + " --backend cpu --cpu-threads 1");
  EXPECT_NE(one["model"].get<std::string>().find("vocab 100,"), std::string::npos) << one["model"];
  const nlohmann::json two = plan_json("--load " + d + " --tensor-model-parallel-size 2 --world-size 2");
  EXPECT_NE(two["model"].get<std::string>().find("vocab 256,"), std::string::npos) << two["model"];
  const test::RunResult r = test::run_binary("plan --load " + d + " --tensor-model-parallel-size 2 --world-size 2");
  EXPECT_EQ(test::count_matching_lines(r.out + r.err, "vocabulary 100 padded to 256 for tensor parallelism 2"), 1)
      << r.out << r.err;
  fs::remove_all(d);
}

TEST(PlanCli, BadFlagsGiveOneLine) {
  for (const char* args : {
           "--model baichuan-7b --tensor-model-parallel-size 3",
           "--model baichuan-7b --tensor-model-parallel-size 2 --world-size 3",
           "--model baichuan-7b --pipeline-model-parallel-size 3",
           "--model baichuan-7b --device-memory lots",
           "--model baichuan-7b --backend cpu --tensor-model-parallel-size 2 --sequence-parallel --seq-length 4095",
           "--model baichuan-7b --global-batch-size 3 --micro-batch-size 2",
           "--model baichuan-7b --global-batch-size 0",  // 0 micro-batches: a NaN bubble, no activations
           "--model baichuan-7b --global-batch-size -8 --fp16",
           "--num-layers 32 --tokenizer-model /nonexistent/tokenizer.model",
           "--model baichuan-7b --gemm-tflops -1",
       }) {
    const test::RunResult r = test::run_binary(std::string("plan ") + args);
    EXPECT_EQ(r.status, 2) << args << ": " << r.err;
    EXPECT_EQ(test::count_matching_lines(r.err, ""), 1) << args << ": " << r.err;
  }
}

}  // namespace
}  // namespace cs
