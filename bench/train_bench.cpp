// make bench, training half: end-to-end `train()` (data, forward, backward, clipping, AdamW,
// logging) on the small config, and a profile of one step by op family, timed through a
// wrapped op table (the model calls every op through it, so nothing escapes the accounting).
// Prints a table and JSON lines; medians over iterations after the first (warm-up).
#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/timer.h"
#include "data/indexed_dataset.h"
#include "model/flops.h"
#include "train/trainer.h"

namespace cs {
namespace {

// Per-family seconds, accumulated by the wrapped ops.
enum Family { kGemm, kAttention, kElementwise, kLoss, kOptimizer, kFamilies };
const char* kFamilyNames[] = {"GEMM", "attention", "elementwise (norms, rope, swiglu, embedding, copies)",
                              "cross entropy", "optimizer (AdamW, norm, clip)"};
std::array<double, kFamilies> g_seconds{};
const Ops* g_base = nullptr;

template <Family F, typename Fn, typename... A>
auto timed(Fn fn, A&&... a) {
  Timer t;
  if constexpr (std::is_void_v<decltype(fn(std::forward<A>(a)...))>) {
    fn(std::forward<A>(a)...);
    g_seconds[F] += t.seconds();
  } else {
    auto r = fn(std::forward<A>(a)...);
    g_seconds[F] += t.seconds();
    return r;
  }
}

Ops profiled_ops(const Ops& base) {
  g_base = &base;
  Ops ops = base;
  ops.name = "cpu+profile";
  ops.matmul = [](const Tensor& a, bool ta, const Tensor& b, bool tb, Tensor& c, float al, float be) {
    timed<kGemm>(g_base->matmul, a, ta, b, tb, c, al, be);
  };
  ops.attention_forward = [](const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& s, Tensor& o, Tensor& l) {
    timed<kAttention>(g_base->attention_forward, q, k, v, s, o, l);
  };
  ops.attention_backward = [](const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& s, const Tensor& o,
                              const Tensor& l, const Tensor& d, Tensor& dq, Tensor& dk, Tensor& dv) {
    timed<kAttention>(g_base->attention_backward, q, k, v, s, o, l, d, dq, dk, dv);
  };
  ops.embedding_forward = [](const Tensor& t, const Tensor& w, Tensor& o) { timed<kElementwise>(g_base->embedding_forward, t, w, o); };
  ops.embedding_backward = [](const Tensor& t, const Tensor& d, Tensor& w) { timed<kElementwise>(g_base->embedding_backward, t, d, w); };
  ops.rmsnorm_forward = [](const Tensor& x, const Tensor& w, float e, Tensor& y, Tensor& r) { timed<kElementwise>(g_base->rmsnorm_forward, x, w, e, y, r); };
  ops.rmsnorm_backward = [](const Tensor& x, const Tensor& w, const Tensor& r, const Tensor& dy, Tensor& dx, Tensor& dw, bool acc) {
    timed<kElementwise>(g_base->rmsnorm_backward, x, w, r, dy, dx, dw, acc);
  };
  ops.rope_apply = [](Tensor& x, float b, int64_t p, bool inv) { timed<kElementwise>(g_base->rope_apply, x, b, p, inv); };
  ops.split_heads = [](const Tensor& x, int64_t c, Tensor& o) { timed<kElementwise>(g_base->split_heads, x, c, o); };
  ops.merge_heads = [](const Tensor& i, Tensor& x, int64_t c) { timed<kElementwise>(g_base->merge_heads, i, x, c); };
  ops.swiglu_forward = [](const Tensor& g, Tensor& o) { timed<kElementwise>(g_base->swiglu_forward, g, o); };
  ops.swiglu_backward = [](const Tensor& g, const Tensor& d, Tensor& o) { timed<kElementwise>(g_base->swiglu_backward, g, d, o); };
  ops.add_inplace = [](Tensor& y, const Tensor& x) { timed<kElementwise>(g_base->add_inplace, y, x); };
  ops.copy = [](const Tensor& x, Tensor& y) { timed<kElementwise>(g_base->copy, x, y); };
  ops.zero = [](Tensor& x) { timed<kElementwise>(g_base->zero, x); };
  ops.cross_entropy_forward = [](const Tensor& z, const Tensor& t, Tensor& l, Tensor& s) { timed<kLoss>(g_base->cross_entropy_forward, z, t, l, s); };
  ops.cross_entropy_backward = [](const Tensor& z, const Tensor& s, const Tensor& t, float sc, Tensor& d) {
    timed<kLoss>(g_base->cross_entropy_backward, z, s, t, sc, d);
  };
  ops.sum_squares = [](const Tensor& x) { return timed<kOptimizer>(g_base->sum_squares, x); };
  ops.scale = [](Tensor& x, float a) { timed<kOptimizer>(g_base->scale, x, a); };
  ops.adamw_update = [](Tensor& p, const Tensor& g, Tensor& m, Tensor& v, double lr, double b1, double b2, double e, double wd, int64_t s) {
    timed<kOptimizer>(g_base->adamw_update, p, g, m, v, lr, b1, b2, e, wd, s);
  };
  return ops;
}

std::string synthetic_data(int64_t vocab) {
  const std::string prefix = "/tmp/cs_train_bench_data";
  IndexedDatasetWriter w(prefix, best_dtype(vocab));
  std::vector<int32_t> ids(4096);
  for (int d = 0; d < 64; ++d) {
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t((d * 7919 + int64_t(i) * 104729) % vocab);
    w.add_item(ids.data(), int64_t(ids.size()));
    w.end_document();
  }
  w.finalize();
  return prefix;
}

}  // namespace
}  // namespace cs

int main(int argc, char** argv) {
  using namespace cs;
  const int iters = argc > 1 ? std::atoi(argv[1]) : 5;
  const double peak = argc > 2 ? std::atof(argv[2]) : 0;
  setvbuf(stdout, nullptr, _IOLBF, 0);
  ModelConfig cfg = model_preset("small");
  const int64_t b = 4, t = 512;
  const Ops ops = profiled_ops(cpu_ops());
  SingleGroup world, tp;
  Model m(cfg, ops, tp, b, t);
  m.params().init(1);
  TrainArgs a;
  a.micro_batch = a.global_batch = b;
  a.seq_length = t;
  a.train_iters = 1;
  a.data_path = {synthetic_data(cfg.vocab_size)};
  a.lr = {1e-4, 1e-5, 0, iters, LrDecay::Cosine};
  a.log_interval = 1;
  a.print_log = false;
  train(m, a, ops, world);  // warm-up: one iteration, not counted
  g_seconds = {};
  a.train_iters = iters;
  Timer total;
  TrainResult r = train(m, a, ops, world);
  const double steps_s = total.seconds();
  std::vector<double> step_ms;
  for (const LogRecord& rec : r.records) step_ms.push_back(rec.elapsed_ms_per_iter);
  std::sort(step_ms.begin(), step_ms.end());
  const double med_s = step_ms[step_ms.size() / 2] / 1e3;
  const double tokens = double(b * t) / med_s, tflops = model_flops(cfg, b, t) / med_s / 1e12;
  std::printf("train end-to-end small (D=512 L=8 H=8 T=512 B=4 V=32000, AdamW, clip 1.0): %.1f tokens/s/p  %.4f TFLOPs/p",
              tokens, tflops);
  if (peak > 0) std::printf("  MFU %.1f%%", 100 * tflops * 1e3 / peak);
  std::printf("  (median of %d, %.3f s/step, peak RSS %.0f MiB)\n", iters, med_s,
              double(peak_rss_bytes()) / 1048576.0);
  std::printf("{\"impl\":\"chuanspeed\",\"bench\":\"train\",\"position\":\"rope\",\"tokens_per_s\":%.2f,\"tflops_per_device\":%.5f,\"step_s_median\":%.5f,\"peak_rss_mib\":%.1f}\n",
              tokens, tflops, med_s, double(peak_rss_bytes()) / 1048576.0);
  // Profile of the timed run by family; "other" is the rest of its wall time.
  double fam_total = 0;
  std::printf("where a step's time goes (%d steps after a warm-up step):\n", iters);
  for (int f = 0; f < kFamilies; ++f) {
    const double s = g_seconds[f];
    fam_total += s;
    std::printf("  %-55s %6.1f%%  %8.1f ms/step\n", kFamilyNames[f], 100 * s / steps_s, 1e3 * s / iters);
  }
  std::printf("  %-55s %6.1f%%  %8.1f ms/step\n", "other (data, loop, logging)", 100 * (steps_s - fam_total) / steps_s,
              1e3 * (steps_s - fam_total) / iters);
  return 0;
}
