// The GPU training benchmark of bench/gpu_check.sh: full training steps (forward, backward,
// AdamW on fp32 master weights) of a Baichuan-shaped model on one device, random tokens, timed
// with the device synchronised; prints model TFLOP/s by Megatron's formula (model/flops.h),
// tokens/s and the device memory the run allocated, as one JSON line and a table row.
//   gpu_bench --device cuda --hidden 4096 --heads 32 --ffn 11008 --vocab 64000 --layers 4
//             --seq 4096 --micro-batch 1 --precision bf16 --position rope --iters 10
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <utility>
#include <random>
#include <vector>

#include "backend/backend.h"
#include "core/timer.h"
#include "model/flops.h"
#include "model/model.h"
#include "optim/adamw.h"

namespace cs {
namespace {

// The backend with its allocations counted (peak bytes held), forwarding everything else.
class CountingBackend final : public Backend {
 public:
  explicit CountingBackend(std::unique_ptr<Backend> b) : b_(std::move(b)) {}
  const char* name() const override { return b_->name(); }
  Device device() const override { return b_->device(); }
  bool is_host() const override { return b_->is_host(); }
  const Ops& ops() const override { return b_->ops(); }
  std::unique_ptr<Ctx> make_context() override { return b_->make_context(); }
  void* allocate(size_t bytes) override {
    void* p = b_->allocate(bytes);
    sizes_.push_back({p, bytes});
    held_ += bytes;
    peak_ = std::max(peak_, held_);
    return p;
  }
  void deallocate(void* p) noexcept override {
    for (auto& s : sizes_)
      if (s.first == p && p) {
        held_ -= s.second;
        s.first = nullptr;
        break;
      }
    b_->deallocate(p);
  }
  void upload(Ctx& c, const void* h, const Tensor& t) override { b_->upload(c, h, t); }
  void download(Ctx& c, const Tensor& t, void* h) override { b_->download(c, t, h); }
  void copy(Ctx& c, const Tensor& s, const Tensor& d) override { b_->copy(c, s, d); }
  void zero(Ctx& c, const Tensor& t) override { b_->zero(c, t); }
  void synchronize(Ctx& c) override { b_->synchronize(c); }
  size_t peak() const { return peak_; }

 private:
  std::unique_ptr<Backend> b_;
  std::vector<std::pair<void*, size_t>> sizes_;
  size_t held_ = 0, peak_ = 0;
};

int run(int argc, char** argv) {
  CLI::App app{"chuanspeed GPU training benchmark"};
  std::string device = "cuda", precision = "bf16", position = "rope", label = "chuanspeed";
  int64_t hidden = 4096, heads = 32, ffn = 11008, vocab = 64000, layers = 4, seq = 4096, mb = 1, iters = 10;
  bool recompute = false;
  app.add_option("--device", device);
  app.add_option("--hidden", hidden);
  app.add_option("--heads", heads);
  app.add_option("--ffn", ffn);
  app.add_option("--vocab", vocab);
  app.add_option("--layers", layers);
  app.add_option("--seq", seq);
  app.add_option("--micro-batch", mb);
  app.add_option("--iters", iters, "timed steps after one warm-up step");
  app.add_option("--precision", precision)->check(CLI::IsMember({"fp32", "bf16", "fp16"}));
  app.add_option("--position", position)->check(CLI::IsMember({"rope", "alibi"}));
  app.add_option("--label", label, "the name printed with the figures");
  app.add_flag("--recompute", recompute, "--recompute-granularity full");
  CLI11_PARSE(app, argc, argv);
  // A zero size or no timed step: one usage line.
  for (auto [name, v] : {std::pair{"--hidden", hidden}, {"--heads", heads}, {"--ffn", ffn}, {"--vocab", vocab},
                         {"--layers", layers}, {"--seq", seq}, {"--micro-batch", mb}, {"--iters", iters}})
    if (v < 1) {
      fmt::print(stderr, "gpu_bench: {} {}: expected a positive number\n", name, v);
      return 2;
    }

  CountingBackend backend(make_backend(device));
  auto ctx = backend.make_context();
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
  std::vector<double> secs;
  double loss = 0;
  for (int64_t it = 0; it <= iters; ++it) {
    backend.synchronize(*ctx);
    Timer t;
    model.zero_grad();
    model.forward(tokens.data(), targets.data(), mb, seq);
    model.backward();
    opt.step(model.params(), 1e-5);
    backend.synchronize(*ctx);
    if (it > 0) secs.push_back(t.seconds());
    if (it == iters) loss = model.mean_loss();
  }
  std::sort(secs.begin(), secs.end());
  const double med = secs[secs.size() / 2];
  const double tflops = model_flops(c, mb, seq) / med / 1e12, tok = double(mb * seq) / med;
  fmt::print("{{\"bench\": \"gpu_train\", \"impl\": \"{}\", \"precision\": \"{}\", \"position\": \"{}\", \"hidden\": {}, "
             "\"layers\": {}, \"seq\": {}, \"micro_batch\": {}, \"step_s\": {:.4f}, \"tokens_per_s\": {:.0f}, "
             "\"model_tflops\": {:.1f}, \"peak_mib\": {}, \"loss\": {:.4f}}}\n",
             label, precision, position, hidden, layers, seq, mb, med, tok, tflops, backend.peak() >> 20, loss);
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
