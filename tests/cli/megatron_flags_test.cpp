// A Megatron-LM launch script's flags run unchanged: flags that state Baichuan's architecture or
// name a fusion are accepted silently; flags with no effect here are accepted and named once, with
// the reason; --use-rotary-position-embeddings, --rotary-percent, --num-query-groups, --kv-channels
// and --norm-epsilon are checked against the model (--norm-epsilon also sets a new model's epsilon,
// which its checkpoint then holds); architectures this program does not build are one line, exit 2.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "run_util.h"

namespace cs::test {
namespace {

class MegatronFlags : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (std::filesystem::path(testing::TempDir()) / ("cs_megatron_flags_" + std::to_string(getpid()))).string();
    std::filesystem::remove_all(dir_);
    ASSERT_EQ(run_binary("synth-data --output-prefix " + dir_ + "/data --vocab-size 101 --num-docs 20").status, 0);
  }
  RunResult train(const std::string& flags) { return train_for("--train-iters 1 " + flags); }
  // KEY's value in each line of run NAME's metrics.jsonl that has it.
  std::vector<double> metric(const std::string& name, const char* key) {
    std::vector<double> s;
    std::ifstream f(dir_ + "/" + name + "/metrics.jsonl");
    for (std::string line; std::getline(f, line);) {
      const auto j = nlohmann::json::parse(line);
      if (j.contains(key)) s.push_back(j[key].get<double>());
    }
    return s;
  }
  RunResult train_for(const std::string& flags) {  // flags say how long
    return run_binary("train --model tiny --vocab-size 101 --seq-length 16 --micro-batch-size 2 --lr 1e-3 "
                      "--split 100,0,0 --data-path " + dir_ + "/data " + flags);
  }
  std::string dir_;
};

TEST_F(MegatronFlags, ALlamaStyleScriptRuns) {
  // The model flags of a Megatron-LM LLaMA-style pretraining script (Baichuan-7B's architecture).
  const auto r = train(
      "--use-mcore-models --transformer-impl local --use-flash-attn --no-position-embedding "
      "--use-rotary-position-embeddings --rotary-percent 1.0 --swiglu --disable-bias-linear "
      "--untie-embeddings-and-output-weights --normalization RMSNorm --norm-epsilon 1e-6 "
      "--group-query-attention --num-query-groups 3 --kv-channels 16 --attention-softmax-in-fp32 "
      "--no-masked-softmax-fusion --no-bias-gelu-fusion --no-bias-dropout-fusion --no-bias-swiglu-fusion "
      "--no-rope-fusion --no-gradient-accumulation-fusion --accumulate-allreduce-grads-in-fp32 "
      "--apply-query-key-layer-scaling --log-throughput --log-validation-ppl-to-tensorboard "
      "--use-checkpoint-args --exit-on-missing-checkpoint --use-cpu-initialization");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err.find("no effect here"), std::string::npos) << r.err;
  // Megatron's tokenizer type names for Baichuan's SentencePiece tokenizer.
  const std::string tok = std::string(CS_SOURCE_DIR) + "/assets/demo/tokenizer";
  for (const std::string& type : {"HuggingFaceTokenizer --tokenizer-name-or-path " + tok,
                                  "GPTSentencePieceTokenizer --tokenizer-model " + tok + "/tokenizer.model"}) {
    const auto t = run_binary("train --model tiny --seq-length 16 --micro-batch-size 2 --train-iters 1 --lr 1e-3 "
                              "--split 100,0,0 --data-path " + dir_ + "/data --tokenizer-type " + type);
    EXPECT_EQ(t.status, 0) << type << ": " << t.err;
  }
  // Megatron's SentencePieceTokenizer adds pieces to the vocabulary: not this tokenizer as it is.
  const auto sp = run_binary("train --model tiny --seq-length 16 --micro-batch-size 2 --train-iters 1 --lr 1e-3 "
                             "--data-path " + dir_ + "/data --tokenizer-type SentencePieceTokenizer --tokenizer-model " +
                             tok + "/tokenizer.model");
  EXPECT_EQ(sp.status, 2);
  EXPECT_NE(sp.err.find("Megatron's adds <CLS>, <SEP>, <EOD> and <MASK> pieces"), std::string::npos) << sp.err;
}

TEST_F(MegatronFlags, FlagsWithoutEffectAreNamedWithTheReason) {
  const auto r = train("--overlap-grad-reduce --overlap-param-gather --num-workers 2 --timing-log-level 2 "
                       "--log-timers-to-tensorboard --tensorboard-log-interval 1 --wandb-project p --wandb-exp-name e "
                       "--ckpt-format torch --empty-unused-memory-level 1 "
                       "--manual-gc --dataloader-type single --data-impl mmap --distributed-backend nccl "
                       "--fp16-lm-cross-entropy --async-save --tensorboard-queue-size 10 --log-progress "
                       "--manual-gc-interval 5 --recompute-activations --log-batch-size-to-tensorboard "
                       "--cross-entropy-loss-fusion --no-data-sharding");
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* flag : {"--overlap-grad-reduce", "--overlap-param-gather", "--num-workers", "--timing-log-level",
                           "--log-timers-to-tensorboard", "--tensorboard-log-interval", "--wandb-project",
                           "--wandb-exp-name", "--ckpt-format",
                           "--empty-unused-memory-level", "--manual-gc", "--distributed-backend",
                           "--fp16-lm-cross-entropy", "--async-save", "--tensorboard-queue-size", "--log-progress",
                           "--manual-gc-interval", "--recompute-activations", "--no-data-sharding"})
    EXPECT_NE(r.err.find(std::string("accepted, no effect here: ") + flag + " ("), std::string::npos) << flag << "\n" << r.err;
  // Selective recomputation has nothing to recompute here (a note); with a layer method, Megatron's error.
  const auto s = train("--recompute-granularity selective");
  ASSERT_EQ(s.status, 0) << s.err;
  EXPECT_NE(s.err.find("accepted, no effect here: --recompute-granularity selective (selective recomputation "
                       "recomputes the attention scores, which flash attention never stores"), std::string::npos)
      << s.err;
  const auto m = train("--recompute-granularity selective --recompute-method uniform");
  EXPECT_EQ(m.status, 2) << m.err;
  EXPECT_NE(m.err.find("--recompute-method uniform with selective recomputation"), std::string::npos) << m.err;
}

// Newer Megatron-LM flags: what this program already is (silent), what has no effect here (named),
// values pinned to what is built (Baichuan's RoPE base, fp32 optimizer state) and what is refused.
TEST_F(MegatronFlags, NewerMegatronFlags) {
  const auto silent = train("--deterministic-mode --attention-backend flash --fp32-residual-connection "
                            "--use-precision-aware-optimizer --main-grads-dtype fp32 --main-params-dtype fp32 "
                            "--exp-avg-dtype fp32 --exp-avg-sq-dtype fp32 --rotary-base 10000 "
                            "--rotary-seq-len-interpolation-factor 1 --mid-level-dataset-surplus 0.005 "
                            "--encoder-seq-length 16 --log-throughput-to-tensorboard --log-l2-norm-grad-to-tensorboard "
                            "--context-parallel-size 1 --expert-model-parallel-size 1 --expert-tensor-parallel-size 1 "
                            "--softmax-type vanilla --cross-entropy-fusion-impl native --gradient-accumulation-fusion "
                            "--use-te-rng-tracker --microbatch-group-size-per-virtual-pipeline-stage 1");
  ASSERT_EQ(silent.status, 0) << silent.err;
  EXPECT_EQ(silent.err.find("no effect here"), std::string::npos) << silent.err;
  const auto noted = train("--profile --profile-step-start 2 --profile-step-end 3 --profile-ranks 0 1 "
                           "--use-pytorch-profiler --log-straggler --log-energy --use-dist-ckpt --auto-detect-ckpt-format "
                           "--overlap-p2p-communication --ddp-bucket-size 40000000 --ddp-average-in-collective "
                           "--grad-reduce-in-bf16 --no-one-logger --enable-ft-package --non-persistent-save-interval 5 "
                           "--check-for-spiky-loss --rerun-mode validate_results --no-manual-gc-eval "
                           "--cp-comm-type p2p a2a --tp-comm-overlap");
  ASSERT_EQ(noted.status, 0) << noted.err;
  for (const char* flag : {"--profile", "--profile-step-start", "--profile-step-end", "--profile-ranks",
                           "--use-pytorch-profiler", "--log-straggler", "--log-energy", "--use-dist-ckpt",
                           "--auto-detect-ckpt-format", "--overlap-p2p-communication", "--ddp-bucket-size",
                           "--ddp-average-in-collective", "--grad-reduce-in-bf16", "--no-one-logger",
                           "--enable-ft-package", "--non-persistent-save-interval", "--check-for-spiky-loss",
                           "--rerun-mode", "--no-manual-gc-eval", "--cp-comm-type", "--tp-comm-overlap"})
    EXPECT_NE(noted.err.find(std::string("accepted, no effect here: ") + flag + " ("), std::string::npos)
        << flag << "\n" << noted.err;
  auto expect_usage = [&](const std::string& flags, const std::string& words) {
    const auto r = train(flags);
    EXPECT_EQ(r.status, 2) << flags << ": " << r.err;
    EXPECT_NE(r.err.find(words), std::string::npos) << flags << ": " << r.err;
  };
  expect_usage("--rotary-base 500000", "--rotary-base 500000: Baichuan's RoPE base (10000) is the one built here; "
                                       "expected 10000");
  expect_usage("--rotary-base 1e4 --exp-avg-dtype bf16", "--exp-avg-dtype bf16: Adam's moments are fp32; expected fp32");
  expect_usage("--rotary-seq-len-interpolation-factor 4", "positions are not interpolated");
  expect_usage("--context-parallel-size 2", "--context-parallel-size 2: context parallelism is not built");
  expect_usage("--microbatch-group-size-per-virtual-pipeline-stage 2",
               "the interleaved schedule runs its micro-batches in groups of --pipeline-model-parallel-size (1)");
  expect_usage("--mid-level-dataset-surplus 0.01", "--mid-level-dataset-surplus 0.01: a blend's datasets are built "
                                                  "with Megatron's default surplus; expected 0.005");
  for (const char* flag : {"--account-for-embedding-in-pipeline-split", "--account-for-loss-in-pipeline-split",
                           "--decoupled-lr 1e-4", "--decoupled-min-lr 1e-5", "--init-method-xavier-uniform",
                           "--decoder-first-pipeline-num-layers 1", "--pipeline-model-parallel-layout Et*2L",
                           "--use-rope-scaling", "--sft", "--batch-size 4", "--warmup 0.1",
                           "--model-parallel-size 2", "--use-torch-fsdp2", "--fp8-recipe delayed",
                           "--window-size 128 0", "--qk-l2-norm"}) {
    const std::string name = std::string(flag).substr(0, std::string(flag).find(' '));
    expect_usage(flag, name + ": ");
    expect_usage(flag, "Hint: leave the flag out");
  }
}

TEST_F(MegatronFlags, ValuesAreCheckedAgainstTheModel) {
  auto expect_usage = [&](const std::string& flags, const std::string& words) {
    const auto r = train(flags);
    EXPECT_EQ(r.status, 2) << flags << ": " << r.err;
    EXPECT_NE(r.err.find(words), std::string::npos) << flags << ": " << r.err;
  };
  expect_usage("--rotary-percent 0.5", "--rotary-percent 0.5: Baichuan rotates the whole head; expected 1.0");
  expect_usage("--group-query-attention --num-query-groups 1", "--num-query-groups 1: Baichuan's attention has one "
                                                               "key/value head per query head; expected --num-query-groups 3");
  expect_usage("--kv-channels 8", "--kv-channels 8: the head dim is the hidden size over the heads; expected 16");
  expect_usage("--position-embedding-type alibi --use-rotary-position-embeddings", "expected one position scheme");
  expect_usage("--norm-epsilon -1", "--norm-epsilon");
  // Megatron reads --num-query-groups (default 1) only with --group-query-attention.
  expect_usage("--group-query-attention", "--group-query-attention with --num-query-groups 1");
  EXPECT_EQ(train("--num-query-groups 1").status, 0);
  expect_usage("--dataloader-type external", "--dataloader-type external: Megatron then takes a data loader object");
  expect_usage("--dataloader-type random", "--dataloader-type random: expected single or cyclic");
  EXPECT_EQ(train("--dataloader-type cyclic").status, 0);
  EXPECT_EQ(train("--dataloader-type cyclic --no-data-sharding").status, 0);
  expect_usage("--data-impl lazy", "--data-impl");
  for (const char* flag : {"--squared-relu", "--openai-gelu", "--add-bias-linear", "--add-qkv-bias", "--apply-layernorm-1p",
                           "--qk-layernorm", "--apply-residual-connection-post-layernorm", "--fp8-format hybrid",
                           "--vocab-file gpt2-vocab.json", "--merge-file merges.txt",
                           "--mock-data"}) {
    const std::string name = std::string(flag).substr(0, std::string(flag).find(' '));
    expect_usage(flag, name + ": ");
    expect_usage(flag, "Hint: leave the flag out");
  }
}

// Megatron's --rampup-batch-size: sample-based runs only; each iteration's log line shows its batch.
TEST_F(MegatronFlags, RampupBatchSizeGrowsTheBatchOfASampleBasedRun) {
  auto r = train_for("--train-samples 20 --global-batch-size 4 --rampup-batch-size 2 2 4 --log-interval 1");
  ASSERT_EQ(r.status, 0) << r.err;
  // 2 + 2 samples, then 4 (the first past the rampup's 4 samples): 3 iterations, then 3 more of 4.
  std::vector<std::string> batches;
  for (size_t at = r.out.find("global batch size:"); at != std::string::npos;
       at = r.out.find("global batch size:", at + 1))
    batches.push_back(r.out.substr(at + 18, r.out.find('|', at) - at - 18));
  EXPECT_EQ(batches, (std::vector<std::string>{"     2 ", "     2 ", "     4 ", "     4 ", "     4 ", "     4 "}));
  EXPECT_NE(r.out.find("iteration        6/       6 | consumed samples:           20 |"), std::string::npos) << r.out;
  r = train_for("--train-iters 2 --global-batch-size 4 --rampup-batch-size 2 2 4");
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("--rampup-batch-size with --train-iters: the batch ramps up over samples, which needs "
                       "--train-samples"), std::string::npos) << r.err;
  r = train_for("--global-batch-size 4 --rampup-batch-size 2 2 4");
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("--rampup-batch-size: the batch ramps up over samples, which needs --train-samples"),
            std::string::npos) << r.err;
  r = train_for("--train-samples 20 --global-batch-size 4 --rampup-batch-size 4 2 4");
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("the start batch must be below --global-batch-size 4"), std::string::npos) << r.err;
  r = train_for("--train-samples 20 --global-batch-size 4 --rampup-batch-size 0 0 0");
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("--rampup-batch-size 0 0 0: expected a start batch"), std::string::npos) << r.err;
  r = train_for("--train-samples 20 --global-batch-size 4 --rampup-batch-size 2 2");
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("--rampup-batch-size"), std::string::npos) << r.err;
}

TEST_F(MegatronFlags, NormEpsilonSetsANewModelAndMustMatchALoadedOne) {
  auto r = train("--norm-epsilon 0.001 --save " + dir_ + "/run");
  ASSERT_EQ(r.status, 0) << r.err;
  std::ifstream meta(dir_ + "/run/iter_0000001/meta.json");
  ASSERT_TRUE(meta.good());
  const std::string text((std::istreambuf_iterator<char>(meta)), {});
  EXPECT_NE(text.find("\"rms_norm_eps\": 0.001"), std::string::npos) << text.substr(0, 400);
  r = train("--load " + dir_ + "/run --save " + dir_ + "/run --train-iters 2 --norm-epsilon 1e-6");
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("--norm-epsilon 1e-06 differs from the model's RMSNorm epsilon 0.001 (from --load)"),
            std::string::npos) << r.err;
  r = train("--load " + dir_ + "/run --save " + dir_ + "/run --train-iters 2 --layernorm-epsilon 0.001 "
            "--override-opt_param-scheduler");
  EXPECT_EQ(r.status, 0) << r.err;
}

// Megatron builds the model from the flags, so a script's architecture flags beside --load must be
// the loaded model's (or Megatron fails to load the shapes, or trains another position scheme);
// with --use-checkpoint-args the checkpoint's win.
TEST_F(MegatronFlags, ArchitectureFlagsMustBeTheLoadedModels) {
  ASSERT_EQ(train("--save " + dir_ + "/run").status, 0);
  ASSERT_EQ(run_binary("init --model tiny --vocab-size 101 --save " + dir_ + "/hf").status, 0);
  auto expect_usage = [&](const std::string& flags, const std::string& words) {
    const auto r = train(flags);
    EXPECT_EQ(r.status, 2) << flags << ": " << r.err;
    EXPECT_EQ(count_matching_lines(r.err, "error:"), 1) << r.err;
    EXPECT_NE(r.err.find(words), std::string::npos) << flags << ": " << r.err;
  };
  const std::string ckpt = "--load " + dir_ + "/run ", hf = "--load " + dir_ + "/hf ";
  expect_usage(ckpt + "--num-layers 3", "--num-layers 3: the model loaded from " + dir_ + "/run/iter_0000001/meta.json "
                                        "has 2 layers. Hint: leave the architecture flags out");
  expect_usage(ckpt + "--num-attention-heads 4", "--num-attention-heads 4: the model loaded from");
  expect_usage(hf + "--hidden-size 64", "--hidden-size 64: the model loaded from " + dir_ + "/hf/config.json has 48");
  expect_usage(hf + "--ffn-hidden-size 96", "--ffn-hidden-size 96");
  expect_usage(hf + "--position-embedding-type alibi", "uses rope positions");
  expect_usage(ckpt + "--vocab-size 300", "--vocab-size 300: the model loaded from");
  // --use-checkpoint-args takes the position scheme and the key/value groups from the checkpoint,
  // as Megatron forces them; the shapes still come from the flags (Megatron would fail to load).
  expect_usage(hf + "--num-layers 5 --use-checkpoint-args", "--num-layers 5: the model loaded from");
  // The model's own values (the vocabulary padded, as Megatron pads it), and what
  // --use-checkpoint-args takes from the checkpoint, run.
  for (const std::string& ok : {ckpt + "--num-layers 2 --hidden-size 48 --use-rotary-position-embeddings",
                                hf + "--num-layers 2 --num-attention-heads 3 --position-embedding-type rope",
                                hf + "--position-embedding-type alibi --use-checkpoint-args",
                                hf + "--group-query-attention --num-query-groups 1 --use-checkpoint-args"}) {
    const auto r = train(ok);
    EXPECT_EQ(r.status, 0) << ok << "\n" << r.err;
  }
  // A NullTokenizer run resumes with its own flags: the model has --vocab-size + 1 entries, padded
  // (1024 + 1 -> 1152 with the default 128). So does a checkpoint written at another
  // tensor-parallel size, padded to a multiple of 128 x that size (a TP2 checkpoint of 101 + 1: 256).
  const std::string null_tok = "--tokenizer-type NullTokenizer --split 100,0,0 --data-path " + dir_ + "/data ";
  auto null_run = [&](const std::string& flags) {
    return run_binary("train --model tiny --seq-length 16 --micro-batch-size 2 --lr 1e-3 --train-iters 1 " + null_tok +
                      flags);
  };
  ASSERT_EQ(null_run("--vocab-size 1024 --save " + dir_ + "/null").status, 0);
  auto r = null_run("--vocab-size 1024 --load " + dir_ + "/null");
  EXPECT_EQ(r.status, 0) << r.err;
  r = null_run("--vocab-size 101 --make-vocab-size-divisible-by 256 --save " + dir_ + "/wide");
  ASSERT_EQ(r.status, 0) << r.err;
  r = null_run("--vocab-size 101 --load " + dir_ + "/wide");
  EXPECT_EQ(r.status, 0) << r.err;
  r = null_run("--vocab-size 2000 --load " + dir_ + "/null");
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("--vocab-size 2000: the model loaded from " + dir_ + "/null/iter_0000001/meta.json has 1152 "
                       "vocabulary entries, expected 2001 or it padded"), std::string::npos) << r.err;
}

// --train-samples counts the run and its schedule in samples, as Megatron does: whole global
// batches of it are trained, a schedule in whole batches equals the iteration flags' (the same
// bits), and a warmup that ends between two batches gives the fraction Megatron's gives.
TEST_F(MegatronFlags, TrainSamplesCountTheScheduleInSamples) {
  auto lrs = [&](const std::string& name) {
    std::map<int64_t, std::pair<double, double>> m;  // iteration -> (lr, loss)
    std::ifstream f(dir_ + "/" + name + "/metrics.jsonl");
    for (std::string line; std::getline(f, line);) {
      const auto j = nlohmann::json::parse(line);
      if (j.contains("lm_loss")) m[j["iteration"]] = {j["learning_rate"].get<double>(), j["lm_loss"].get<double>()};
    }
    return m;
  };
  const std::string base = "--global-batch-size 4 --log-interval 1 --lr-decay-style linear --min-lr 1e-4 ";
  ASSERT_EQ(train_for(base + "--train-iters 5 --lr-warmup-iters 2 --save " + dir_ + "/iters").status, 0);
  // 22 samples: 5 whole batches of 4; the decay spans --train-samples unless --lr-decay-samples says.
  ASSERT_EQ(train_for(base + "--train-samples 22 --lr-warmup-samples 8 --lr-decay-samples 20 --save " + dir_ +
                      "/samples").status, 0);
  ASSERT_EQ(train_for(base + "--train-samples 22 --lr-warmup-samples 8 --save " + dir_ + "/longer").status, 0);
  const auto a = lrs("iters"), b = lrs("samples"), c = lrs("longer");
  ASSERT_EQ(a.size(), 5u);
  EXPECT_EQ(a, b);
  EXPECT_DOUBLE_EQ(c.at(4).first, 1e-4 + (1.0 - (16.0 - 8.0) / (22.0 - 8.0)) * (1e-3 - 1e-4));  // after 4 steps
  // Warmup over 6 samples: after iteration 1 (4 samples; Megatron logs the lr after the step, the
  // next iteration's) the lr is 4/6 of --lr.
  auto r = train_for(base + "--train-samples 20 --lr-warmup-samples 6 --save " + dir_ + "/frac");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_DOUBLE_EQ(lrs("frac").at(1).first, 1e-3 * 4.0 / 6.0);
  r = train_for(base + "--train-iters 5 --lr-warmup-fraction 0.3 --save " + dir_ + "/fraction");  // 0.3 x 20 = 6 samples
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_DOUBLE_EQ(lrs("fraction").at(1).first, 1e-3 * 4.0 / 6.0);
  // Megatron's scheduler checks.
  for (const auto& [flags, words] : std::vector<std::pair<std::string, std::string>>{
           {"--train-iters 5 --lr-decay-iters 0", "--lr-decay-iters 0: expected at least 1"},
           {"--train-iters 5 --min-lr 1", "--min-lr 1: expected 0 to --lr 0.001"},
           {"--train-iters 5 --lr-warmup-init 0.01", "--lr-warmup-init 0.01: expected 0 to --lr"},
           {"--train-iters 5 --lr-warmup-fraction 0.1 --lr-warmup-iters 2", "--lr-warmup-fraction with --lr-warmup-iters 2"}}) {
    r = train_for(flags);
    EXPECT_EQ(r.status, 2) << flags << ": " << r.err;
    EXPECT_NE(r.err.find(words), std::string::npos) << flags << ": " << r.err;
  }
  EXPECT_EQ(train_for("--train-iters 2 --lr-warmup-fraction 0.1 --lr-warmup-iters 0").status, 0);  // 0: no mix
  EXPECT_EQ(train_for("--train-samples 8 --lr-warmup-iters 0").status, 0);

  // Iteration and sample flags do not mix.
  r = train_for(base + "--train-samples 20 --lr-decay-iters 4");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--lr-decay-iters with --train-samples: the schedule is counted in samples"), std::string::npos)
      << r.err;
  r = train_for(base + "--train-iters 5 --train-samples 20");
  EXPECT_EQ(r.status, 2) << r.err;
}

// --loss-scale (and DeepSpeed's fp16.loss_scale) is a constant fp16 loss scale; --optimizer adam is
// what runs, another optimizer is refused, and so is an increasing weight decay without its ends.
TEST_F(MegatronFlags, StaticLossScaleOptimizerAndWeightDecayStyle) {
  auto scales = [&](const std::string& name) { return metric(name, "loss_scale"); };
  auto r = train_for("--train-iters 3 --log-interval 1 --fp16 --loss-scale 512 --loss-scale-window 1 --optimizer adam "
                     "--weight-decay-incr-style constant --save " + dir_ + "/static");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(scales("static"), (std::vector<double>{512, 512, 512}));
  r = train_for("--train-iters 3 --log-interval 1 --fp16 --initial-loss-scale 512 --loss-scale-window 1 --save " + dir_ +
                "/dynamic");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(scales("dynamic"), (std::vector<double>{1024, 2048, 4096}));  // the dynamic scale grows
  std::ofstream(dir_ + "/ds.json") << R"({"train_batch_size": 2, "fp16": {"enabled": true, "loss_scale": 256}})";
  r = train_for("--train-iters 2 --log-interval 1 --deepspeed --deepspeed_config " + dir_ + "/ds.json --save " + dir_ +
                "/ds");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(scales("ds"), (std::vector<double>{256, 256}));
  r = train("--optimizer sgd");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--optimizer"), std::string::npos) << r.err;
  r = train("--weight-decay-incr-style cosine");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--weight-decay-incr-style cosine: expected --start-weight-decay and --end-weight-decay"),
            std::string::npos) << r.err;
}

// Megatron's weight-decay increment: iteration i decays with the weight decay of the steps before
// it, so linear from 0 trains iterations 1 and 2 exactly as a weight decay of 0 (iteration 1's step
// decays with wd(0) = 0, which iteration 2's loss shows) and iteration 3 otherwise; the checkpoint
// keeps the settings, and a resume with other ends is refused as Megatron refuses it.
TEST_F(MegatronFlags, WeightDecayIncrement) {
  auto losses = [&](const std::string& name) { return metric(name, "lm_loss"); };
  const std::string run = "--train-iters 4 --log-interval 1 --lr 1e-2 --save " + dir_ + "/";
  auto r = train_for(run + "zero --weight-decay 0");
  ASSERT_EQ(r.status, 0) << r.err;
  r = train_for(run + "incr --weight-decay-incr-style linear --start-weight-decay 0 --end-weight-decay 0.5 "
                      "--save-interval 2");
  ASSERT_EQ(r.status, 0) << r.err;
  const std::vector<double> zero = losses("zero"), incr = losses("incr");
  ASSERT_EQ(zero.size(), 4u);
  ASSERT_EQ(incr.size(), 4u);
  EXPECT_EQ(incr[0], zero[0]);
  EXPECT_EQ(incr[1], zero[1]);  // the first step decayed with wd(0) = 0
  EXPECT_NE(incr[2], zero[2]);  // the second with wd(2 samples) = 0.5 x 2 / 8
  // Resumed from iteration 2: iterations 3 and 4 as the run straight through.
  r = train_for(run + "resumed --weight-decay-incr-style linear --start-weight-decay 0 --end-weight-decay 0.5 --load " +
                dir_ + "/incr --ckpt-step 2");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(losses("resumed"), (std::vector<double>{incr[2], incr[3]}));
  const auto meta = nlohmann::json::parse(std::ifstream(dir_ + "/incr/iter_0000002/meta.json"));
  EXPECT_EQ(meta["scheduler"]["wd_incr_style"], "linear");
  EXPECT_EQ(meta["scheduler"]["start_wd"], 0.0);
  EXPECT_EQ(meta["scheduler"]["end_wd"], 0.5);
  EXPECT_EQ(meta["scheduler"]["wd_incr_steps"], 8);
  r = train_for("--train-iters 4 --lr 1e-2 --weight-decay-incr-style linear --start-weight-decay 0 "
                "--end-weight-decay 0.4 --load " + dir_ + "/incr");
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("--end-weight-decay 0.4 (the checkpoint's 0.5)"), std::string::npos) << r.err;
  r = train("--weight-decay-incr-style linear --start-weight-decay 0.2 --end-weight-decay 0.1");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--end-weight-decay 0.1 below --start-weight-decay 0.2"), std::string::npos) << r.err;
  r = train("--start-weight-decay 0.1");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--start-weight-decay with --weight-decay-incr-style constant"), std::string::npos) << r.err;
}

// Megatron-core's WSD and inverse-square-root styles from the command line (their values against
// Megatron's scheduler: tests/optim/optim_test.cpp): the logged lr is the one after each
// iteration's step, 2 samples an iteration here.
TEST_F(MegatronFlags, WsdAndInverseSquareRootSchedules) {
  auto lrs = [&](const std::string& name, const std::string& flags) {
    const auto r = train_for("--train-iters 6 --log-interval 1 --lr 1e-2 " + flags + " --save " + dir_ + "/" + name);
    EXPECT_EQ(r.status, 0) << r.err;
    return metric(name, "learning_rate");
  };
  // 12 samples of decay, the last 4 the anneal: constant to 8 samples, then linear to 0.
  EXPECT_EQ(lrs("wsd", "--lr-decay-style WSD --lr-wsd-decay-iters 2 --lr-wsd-decay-style linear"),
            (std::vector<double>{1e-2, 1e-2, 1e-2, 1e-2, 0.5e-2, 0.0}));
  const std::vector<double> isr = lrs("isr", "--lr-decay-style inverse-square-root --lr-warmup-iters 2 --min-lr 1e-4");
  ASSERT_EQ(isr.size(), 6u);
  EXPECT_DOUBLE_EQ(isr[0], 0.5e-2);  // warming up over 4 samples
  EXPECT_DOUBLE_EQ(isr[1], 1e-2);
  for (int it = 3; it <= 6; ++it) EXPECT_DOUBLE_EQ(isr[size_t(it - 1)], 1e-2 * std::sqrt(4.0) / std::sqrt(2.0 * it));
  const auto r = train("--lr-decay-style WSD");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--lr-decay-style WSD: the anneal's length is missing. Hint: add --lr-wsd-decay-iters N"),
            std::string::npos) << r.err;
}

// --start-eval-at-iter: the validations before it are left out (the one at the end of training
// stays); --encoder-num-layers is Megatron's other name for --num-layers.
TEST_F(MegatronFlags, StartEvalAtIterAndEncoderNumLayers) {
  ASSERT_EQ(run_binary("synth-data --output-prefix " + dir_ + "/data60 --vocab-size 101 --num-docs 60").status, 0);
  auto run = [&](int64_t start) {
    return run_binary("train --model tiny --vocab-size 101 --encoder-seq-length 12 --micro-batch-size 2 --lr 1e-3 "
                      "--split 60,40,0 --train-iters 6 --eval-interval 2 --eval-iters 1 --encoder-num-layers 3 "
                      "--start-eval-at-iter " + std::to_string(start) + " --data-path " + dir_ + "/data");
  };
  for (const int64_t start : {3, 4}) {  // 4: a multiple of the interval evaluates at 4 itself
    const auto r = run(start);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out.find("validation loss at iteration 2 |"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("validation loss at iteration 4 |"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("validation loss at iteration 6 |"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("validation loss at the end of training for val data"), std::string::npos) << r.out;
    EXPECT_NE(r.err.find("[train] model: 3 layers"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("samples of 12 tokens"), std::string::npos) << r.err;
  }
  // The split is sized for the evaluations that happen (its one document gives 5 samples an epoch):
  // a start at 4 evaluates at 4, 6 and the end, 3 x 2 samples, two epochs (Megatron's count, one
  // fewer, would fit one); a start at 5 at 6 and the end, one epoch.
  for (const auto& [start, epochs] : std::vector<std::pair<int, std::string>>{{4, "2 epoch(s)"}, {5, "1 epoch(s)"}}) {
    const auto r = run_binary("train --model tiny --vocab-size 101 --seq-length 16 --micro-batch-size 2 --lr 1e-3 "
                              "--split 98,2,0 --train-iters 6 --eval-interval 2 --eval-iters 1 --start-eval-at-iter " +
                              std::to_string(start) + " --data-cache-path " + dir_ + "/cache" + std::to_string(start) +
                              " --data-path " + dir_ + "/data60");
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.err.find("documents [59, 60): " + epochs), std::string::npos) << start << "\n" << r.err;
  }
  // A start past the run: no validation during it, the one at the end of training stays.
  const auto late = run(8);
  ASSERT_EQ(late.status, 0) << late.err;
  EXPECT_EQ(late.out.find("validation loss at iteration"), std::string::npos) << late.out;
  EXPECT_NE(late.out.find("validation loss at the end of training for val data"), std::string::npos) << late.out;
}

// Megatron's --eval-micro-batch-size / --eval-global-batch-size: the same validation samples (an
// evaluation's eval-iters x eval global batch) in other micro-batches and steps give the same loss;
// a micro-batch above the training's, or a batch that does not split, is one line.
TEST_F(MegatronFlags, EvalBatchSizes) {
  auto valid = [&](const std::string& extra) {
    const auto r = run_binary("train --model tiny --vocab-size 101 --seq-length 16 --micro-batch-size 2 "
                              "--global-batch-size 4 --lr 1e-3 --train-iters 2 --eval-interval 2 --split 50,40,10 "
                              "--data-path " + dir_ + "/data " + extra);
    EXPECT_EQ(r.status, 0) << extra << ": " << r.err;
    const std::string key = "validation loss at iteration 2 | lm loss value: ";
    const size_t at = r.out.find(key);
    return at == std::string::npos ? -1.0 : std::stod(r.out.substr(at + key.size(), 12));
  };
  const double base = valid("--eval-iters 1");
  ASSERT_GT(base, 0);
  EXPECT_NEAR(valid("--eval-iters 1 --eval-micro-batch-size 1"), base, 1e-6 * base);
  EXPECT_NEAR(valid("--eval-iters 2 --eval-global-batch-size 2"), base, 1e-6 * base);
  EXPECT_NEAR(valid("--eval-iters 2 --eval-global-batch-size 2 --eval-micro-batch-size 1"), base, 1e-6 * base);
  EXPECT_GT(std::fabs(valid("--eval-iters 2") - base), 1e-6 * base);  // more samples: another mean
  // The evaluation's steps and micro-batches as the run names them.
  auto r = run_binary("train --model tiny --vocab-size 101 --seq-length 16 --micro-batch-size 2 --split 50,40,10 "
                      "--skip-train --eval-iters 3 --eval-global-batch-size 2 --eval-micro-batch-size 1 --data-path " +
                      dir_ + "/data");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("on 3 global batches of 2 samples of 16 tokens of the validation and test splits (2 "
                       "micro-batches of 1)"), std::string::npos) << r.err;
  // Refused before --save is touched.
  r = train("--global-batch-size 8 --eval-micro-batch-size 4 --save " + dir_ + "/refused");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--eval-micro-batch-size 4 above --micro-batch-size 2"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/refused"));
  r = train("--eval-global-batch-size 3");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--eval-global-batch-size 3 is not a multiple of --eval-micro-batch-size 2"), std::string::npos)
      << r.err;
}

// --check-for-nan-in-loss-and-grad stops at the first non-finite iteration, as Megatron's check does
// (an lr of 1e30 diverges at once); without it the run counts the iterations and goes on.
TEST_F(MegatronFlags, CheckForNanStopsTheRun) {
  const std::string diverge = "--train-iters 6 --lr 1e30 --clip-grad 0 --log-interval 1 ";
  auto r = train_for(diverge + "--check-for-nan-in-loss-and-grad");
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("stopping: 1 non-finite iterations in a row (--exit-on-nan 1)"), std::string::npos) << r.err;
  r = train_for(diverge);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err.find("stopping"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace cs::test
