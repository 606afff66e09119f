// The GPU training benchmark of bench/gpu_check.sh: full training steps (forward, backward, the
// global gradient norm and clipping at 1.0, AdamW on fp32 master weights: what a Megatron
// iteration does, and what the PyTorch peer's step does) of a Baichuan-shaped model on one device,
// random tokens, timed with the device synchronised; with --micro-batches G, G forward and
// backward passes accumulate their gradients before the step's norm and update (a global batch of
// G micro-batches, as Megatron's gradient accumulation); prints model TFLOP/s by Megatron's formula
// (model/flops.h), tokens/s and the device memory the run allocated, as one JSON line. With
// --profile N, N more steps run with every op timed (the device synchronised around each op): a
// second JSON line gives their time by op family (bench/op_profile.h), a third the GEMMs' and
// attention's own TFLOP/s.
//   gpu_bench --device cuda --hidden 4096 --heads 32 --ffn 11008 --vocab 64000 --layers 4
//             --seq 4096 --micro-batch 1 --micro-batches 8 --precision bf16 --position rope --iters 10
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <random>
#include <vector>

#include "backend/backend.h"
#include "backend/device_buffer.h"
#include "core/timer.h"
#include "model/flops.h"
#include "model/model.h"
#include "op_profile.h"
#include "optim/adamw.h"
#include "optim/grad_clip.h"

namespace cs {
namespace {

int run(int argc, char** argv) {
  CLI::App app{"chuanspeed GPU training benchmark"};
  std::string device = "cuda", precision = "bf16", position = "rope", label = "chuanspeed";
  int64_t hidden = 4096, heads = 32, ffn = 11008, vocab = 64000, layers = 4, seq = 4096, mb = 1, iters = 10;
  int64_t micro = 1;
  int64_t profile_steps = 0;
  bool recompute = false;
  app.add_option("--device", device);
  app.add_option("--hidden", hidden);
  app.add_option("--heads", heads);
  app.add_option("--ffn", ffn);
  app.add_option("--vocab", vocab);
  app.add_option("--layers", layers);
  app.add_option("--seq", seq);
  app.add_option("--micro-batch", mb);
  app.add_option("--micro-batches", micro, "forward/backward passes per step (gradient accumulation)");
  app.add_option("--iters", iters, "timed steps after one warm-up step");
  app.add_option("--precision", precision)->check(CLI::IsMember({"fp32", "bf16", "fp16"}));
  app.add_option("--position", position)->check(CLI::IsMember({"rope", "alibi"}));
  app.add_option("--label", label, "the name printed with the figures");
  app.add_flag("--recompute", recompute, "--recompute-granularity full");
  app.add_option("--profile", profile_steps, "steps after the timed ones with every op timed, by family");
  CLI11_PARSE(app, argc, argv);
  // A zero size or no timed step: one usage line.
  for (auto [name, v] : {std::pair{"--hidden", hidden}, {"--heads", heads}, {"--ffn", ffn}, {"--vocab", vocab},
                         {"--layers", layers}, {"--seq", seq}, {"--micro-batch", mb}, {"--iters", iters},
                         {"--micro-batches", micro}})
    if (v < 1) {  // --profile may be 0 (it is not in this list)
      fmt::print(stderr, "gpu_bench: {} {}: expected a positive number\n", name, v);
      return 2;
    }

  if (profile_steps < 0) {
    fmt::print(stderr, "gpu_bench: --profile {}: expected 0 or more steps\n", profile_steps);
    return 2;
  }

  bench::CountingBackend backend(make_backend(device));
  auto owner = backend.make_context();  // the stream, handle and workspace
  const Ops ops = bench::profiled_ops(backend.ops());  // times nothing until enabled
  auto ctx = bench::profiled_context(backend, *owner, ops);
  ModelConfig c = model_preset("tiny");
  c.hidden_size = hidden, c.num_heads = heads, c.ffn_hidden_size = ffn, c.vocab_size = vocab;
  c.num_layers = layers, c.max_seq_length = seq, c.recompute = recompute;
  c.position = position == "alibi" ? PositionType::Alibi : PositionType::Rope;
  c.validate();
  const Precision p = precision == "bf16" ? Precision::bf16() : precision == "fp16" ? Precision::fp16() : Precision{};
  SingleGroup tp;
  Model model(c, *ctx, tp, mb, seq, ModelShard::whole(), p);
  model.params().init(*ctx, 1234);
  AdamW opt(model.params(), AdamWConfig{}, *ctx);
  std::mt19937 rng(1);
  std::vector<int32_t> tokens(size_t(mb * seq)), targets(size_t(mb * seq));
  for (size_t i = 0; i < tokens.size(); ++i) {
    tokens[i] = int32_t(rng() % uint32_t(vocab));
    targets[i] = int32_t(rng() % uint32_t(vocab));
  }
  DeviceBuffer sq_buf(backend, sizeof(double));
  const Tensor sq = sq_buf.tensor({1}, DType::F64);
  auto step = [&] {
    backend.synchronize(*ctx);
    Timer t;
    model.zero_grad();
    for (int64_t g = 0; g < micro; ++g) {  // the gradient of the mean loss over the global batch
      model.forward(tokens.data(), targets.data(), mb, seq);
      model.backward(float(1.0 / double(micro * mb * seq)));
    }
    grad_sq_norm(*ctx, model.params().flat_grads(), tp, sq);
    double sq_host = 0;
    backend.download(*ctx, sq, &sq_host);  // the trainer reads the norm once a step, as here
    opt.step(model.params(), 1e-5, clip_coefficient(std::sqrt(sq_host), 1.0));  // clipped in the update, as train's
    backend.synchronize(*ctx);
    return t.seconds();
  };
  std::vector<double> secs;
  double loss = 0;
  for (int64_t it = 0; it <= iters; ++it) {
    const double s = step();
    if (it > 0) secs.push_back(s);
    if (it == iters) loss = model.mean_loss();
  }
  std::sort(secs.begin(), secs.end());
  const double med = secs[secs.size() / 2];
  const double per_step = double(micro);  // micro-batches a step
  const double tflops = per_step * model_flops(c, mb, seq) / med / 1e12, tok = per_step * double(mb * seq) / med;
  fmt::print("{{\"bench\": \"gpu_train\", \"impl\": \"{}\", \"precision\": \"{}\", \"position\": \"{}\", \"hidden\": {}, "
             "\"layers\": {}, \"seq\": {}, \"micro_batch\": {}, \"micro_batches\": {}, \"step_s\": {:.4f}, \"tokens_per_s\": {:.0f}, "
             "\"model_tflops\": {:.1f}, \"peak_mib\": {}, \"loss\": {:.4f}}}\n",
             label, precision, position, hidden, layers, seq, mb, micro, med, tok, tflops, backend.peak() >> 20, loss);
  if (profile_steps > 0) {
    bench::op_profile().enabled = true;
    double total = 0;
    for (int64_t it = 0; it < profile_steps; ++it) total += step();
    bench::print_profile_json(stdout, label.c_str(), int(profile_steps), total);
    bench::print_profile(stderr, int(profile_steps), total);
    // The families' own rates: attention's FLOPs as the formula counts them and as a causal kernel
    // does them (half); the rest of the model FLOPs are GEMMs.
    const auto& sec = bench::op_profile().seconds;
    const double att = attention_flops(c, mb, seq);
    const double gemm = model_flops(c, mb, seq) - att, n = double(profile_steps) * per_step;
    fmt::print("{{\"bench\": \"profile_rates\", \"label\": \"{}\", \"gemm_tflops\": {:.1f}, "
               "\"attention_tflops_counted\": {:.1f}, \"attention_tflops_causal\": {:.1f}}}\n",
               label, gemm * n / sec[bench::kGemm] / 1e12, att * n / sec[bench::kAttention] / 1e12,
               att / 2 * n / sec[bench::kAttention] / 1e12);
  }
  return 0;
}

}  // namespace
}  // namespace cs

int main(int argc, char** argv) {
  try {
    return cs::run(argc, argv);
  } catch (const cs::Error& e) {
    fmt::print(stderr, "gpu_bench: {}\n", e.what());
    return e.exit_code();
  }
}
