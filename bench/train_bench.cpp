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

// Per-family seconds, accumulated by the wrapped ops. Backend copies and zeros are not ops (they
// are Backend members) and count as "other".
enum Family { kGemm, kAttention, kElementwise, kLoss, kOptimizer, kFamilies };
const char* kFamilyNames[] = {"GEMM", "attention", "elementwise (norms, rope, swiglu, embedding, casts)",
                              "cross entropy", "optimizer (AdamW, norm, clip)"};
std::array<double, kFamilies> g_seconds{};
const Ops* g_base = nullptr;

// Runs one op of the base table and adds its time to family F. The CPU ops have finished when they
// return; a device backend's table would need a synchronize here.
template <Family F, typename Fn, typename... A>
void timed(Fn fn, A&&... a) {
  Timer t;
  fn(std::forward<A>(a)...);
  g_seconds[F] += t.seconds();
}

// The base table with every op of a training step timed. A context made with it
// (Ctx(backend, profiled)) routes the model's calls through it.
Ops profiled_ops(const Ops& base) {
  g_base = &base;
  Ops ops = base;
  ops.name = "cpu+profile";
  ops.matmul = [](Ctx& c, const Tensor& a, bool ta, const Tensor& b, bool tb, const Tensor& o, float al, float be) {
    timed<kGemm>(g_base->matmul, c, a, ta, b, tb, o, al, be);
  };
  ops.attention_forward = [](Ctx& c, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& s,
                             const Tensor& seg, const Tensor& o, const Tensor& l) {
    timed<kAttention>(g_base->attention_forward, c, q, k, v, s, seg, o, l);
  };
  ops.attention_backward = [](Ctx& c, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& s,
                              const Tensor& seg, const Tensor& o, const Tensor& l, const Tensor& d,
                              const Tensor& dq, const Tensor& dk, const Tensor& dv) {
    timed<kAttention>(g_base->attention_backward, c, q, k, v, s, seg, o, l, d, dq, dk, dv);
  };
  ops.embedding_forward = [](Ctx& c, const Tensor& t, const Tensor& w, int64_t off, const Tensor& o) {
    timed<kElementwise>(g_base->embedding_forward, c, t, w, off, o);
  };
  ops.embedding_backward = [](Ctx& c, const Tensor& t, int64_t off, const Tensor& d, const Tensor& w) {
    timed<kElementwise>(g_base->embedding_backward, c, t, off, d, w);
  };
  ops.rmsnorm_forward = [](Ctx& c, const Tensor& x, const Tensor& w, float e, const Tensor& y, const Tensor& r) {
    timed<kElementwise>(g_base->rmsnorm_forward, c, x, w, e, y, r);
  };
  ops.rmsnorm_backward = [](Ctx& c, const Tensor& x, const Tensor& w, const Tensor& r, const Tensor& dy,
                            const Tensor& dx, const Tensor& dw, bool acc) {
    timed<kElementwise>(g_base->rmsnorm_backward, c, x, w, r, dy, dx, dw, acc);
  };
  ops.rope_apply = [](Ctx& c, const Tensor& x, float b, int64_t p, const Tensor& pos, bool inv) {
    timed<kElementwise>(g_base->rope_apply, c, x, b, p, pos, inv);
  };
  ops.split_heads = [](Ctx& c, const Tensor& x, int64_t col, const Tensor& o) {
    timed<kElementwise>(g_base->split_heads, c, x, col, o);
  };
  ops.merge_heads = [](Ctx& c, const Tensor& i, const Tensor& x, int64_t col) {
    timed<kElementwise>(g_base->merge_heads, c, i, x, col);
  };
  ops.swiglu_forward = [](Ctx& c, const Tensor& g, const Tensor& o) { timed<kElementwise>(g_base->swiglu_forward, c, g, o); };
  ops.swiglu_backward = [](Ctx& c, const Tensor& g, const Tensor& d, const Tensor& o) {
    timed<kElementwise>(g_base->swiglu_backward, c, g, d, o);
  };
  ops.add_inplace = [](Ctx& c, const Tensor& y, const Tensor& x) { timed<kElementwise>(g_base->add_inplace, c, y, x); };
  ops.cast = [](Ctx& c, const Tensor& x, const Tensor& y) { timed<kElementwise>(g_base->cast, c, x, y); };
  ops.cross_entropy_forward = [](Ctx& c, const Tensor& z, const Tensor& t, int64_t off, const Tensor& s,
                                  const Tensor& tl) { timed<kLoss>(g_base->cross_entropy_forward, c, z, t, off, s, tl); };
  ops.cross_entropy_combine = [](Ctx& c, const Tensor& p, const Tensor& tl, const Tensor& t, const Tensor& l,
                                  const Tensor& s) { timed<kLoss>(g_base->cross_entropy_combine, c, p, tl, t, l, s); };
  ops.cross_entropy_backward = [](Ctx& c, const Tensor& z, const Tensor& s, const Tensor& t, int64_t off, float sc,
                                   const Tensor& d) { timed<kLoss>(g_base->cross_entropy_backward, c, z, s, t, off, sc, d); };
  ops.sum = [](Ctx& c, const Tensor& x, const Tensor& o) { timed<kOptimizer>(g_base->sum, c, x, o); };
  ops.sum_squares = [](Ctx& c, const Tensor& x, const Tensor& o) { timed<kOptimizer>(g_base->sum_squares, c, x, o); };
  ops.scale = [](Ctx& c, const Tensor& x, float a) { timed<kOptimizer>(g_base->scale, c, x, a); };
  ops.adamw_update = [](Ctx& c, const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, double lr,
                        double b1, double b2, double e, double wd, int64_t s, const Tensor& h) {
    timed<kOptimizer>(g_base->adamw_update, c, p, g, m, v, lr, b1, b2, e, wd, s, h);
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
  // train_bench [ITERS [PEAK_GFLOPS [fp32|bf16 [small|medium]]]]: medium is the larger
  // config (hidden 1024, 8 layers, 16 heads, ffn 2752, seq 1024, micro-batch 2).
  const int iters = argc > 1 ? std::atoi(argv[1]) : 5;
  const double peak = argc > 2 ? std::atof(argv[2]) : 0;
  const bool bf16 = argc > 3 && std::string(argv[3]) == "bf16";
  const bool medium = argc > 4 && std::string(argv[4]) == "medium";
  setvbuf(stdout, nullptr, _IOLBF, 0);
  ModelConfig cfg = model_preset("small");
  int64_t b = 4, t = 512;
  if (medium) {
    cfg.hidden_size = 1024;
    cfg.num_heads = 16;
    cfg.ffn_hidden_size = 2752;
    cfg.max_seq_length = t = 1024;
    b = 2;
  }
  const Ops ops = profiled_ops(cpu_ops());
  Ctx ctx(cpu_backend(), ops);  // the CPU backend's memory with the self-timing op table
  SingleGroup world, tp;
  Model m(cfg, ctx, tp, b, t, ModelShard::whole(), bf16 ? Precision::bf16() : Precision{});
  m.params().init(ctx, 1);
  TrainArgs a;
  a.micro_batch = a.global_batch = b;
  a.seq_length = t;
  a.train_iters = 1;
  a.data_path = {synthetic_data(cfg.vocab_size)};
  a.lr = {1e-4, 1e-5, 0, iters, LrDecay::Cosine};
  a.log_interval = 1;
  a.bf16 = bf16;
  a.print_log = false;
  train(m, a, world);  // warm-up: one iteration, not counted
  g_seconds = {};
  a.train_iters = iters;
  Timer total;
  TrainResult r = train(m, a, world);
  const double steps_s = total.seconds();
  std::vector<double> step_ms;
  for (const LogRecord& rec : r.records) step_ms.push_back(rec.elapsed_ms_per_iter);
  std::sort(step_ms.begin(), step_ms.end());
  const double med_s = step_ms[step_ms.size() / 2] / 1e3;
  const double tokens = double(b * t) / med_s, tflops = model_flops(cfg, b, t) / med_s / 1e12;
  const char* precision = bf16 ? "bf16" : "fp32";
  const char* size = medium ? "medium" : "small";
  std::printf("train end-to-end %s %s (D=%lld L=%lld H=%lld T=%lld B=%lld V=%lld, AdamW, clip 1.0): %.1f tokens/s/p  %.4f TFLOPs/p",
              size, precision, (long long)cfg.hidden_size, (long long)cfg.num_layers, (long long)cfg.num_heads,
              (long long)t, (long long)b, (long long)cfg.vocab_size, tokens, tflops);
  if (peak > 0) std::printf("  MFU %.1f%%", 100 * tflops * 1e3 / peak);
  std::printf("  (median of %d, %.3f s/step, peak RSS %.0f MiB)\n", iters, med_s,
              double(peak_rss_bytes()) / 1048576.0);
  std::printf("{\"impl\":\"chuanspeed\",\"bench\":\"train\",\"position\":\"rope\",\"precision\":\"%s\",\"size\":\"%s\",\"tokens_per_s\":%.2f,\"tflops_per_device\":%.5f,\"step_s_median\":%.5f,\"peak_rss_mib\":%.1f}\n",
              precision, size, tokens, tflops, med_s, double(peak_rss_bytes()) / 1048576.0);
  // Profile of the timed steps by family; "other" is the rest of the steps' wall time (the
  // iterations' own times from the log: train()'s setup, optimizer state and data index, is
  // outside them and printed apart).
  double step_total = 0;
  for (double ms : step_ms) step_total += ms / 1e3;
  double fam_total = 0;
  std::printf("where a step's time goes (%d steps after a warm-up step):\n", iters);
  for (int f = 0; f < kFamilies; ++f) {
    const double s = g_seconds[f];
    fam_total += s;
    std::printf("  %-55s %6.1f%%  %8.1f ms/step\n", kFamilyNames[f], 100 * s / step_total, 1e3 * s / iters);
  }
  std::printf("  %-55s %6.1f%%  %8.1f ms/step\n", "other (data, loop, logging, copies, zeros)",
              100 * (step_total - fam_total) / step_total, 1e3 * (step_total - fam_total) / iters);
  std::printf("  (outside the steps: train()'s setup, optimizer state and data index, %.1f ms once)\n",
              1e3 * (steps_s - step_total));
  return 0;
}
