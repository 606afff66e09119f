// make bench, training half: end-to-end `train()` (data, forward, backward, clipping, AdamW,
// logging) on the small config, and a profile of one step by op family, timed through a
// wrapped op table (the model calls every op through it, so nothing escapes the accounting).
// Prints a table and JSON lines; medians over iterations after the first (warm-up).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/timer.h"
#include "data/indexed_dataset.h"
#include "model/flops.h"
#include "op_profile.h"
#include "train/trainer.h"

namespace cs {
namespace {

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
  const Ops ops = bench::profiled_ops(cpu_ops());
  Ctx ctx(cpu_backend(), ops);  // the CPU backend's memory with the self-timing op table
  bench::op_profile().enabled = true;
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
  a.eval_iters = 0;  // the steps only: no evaluation at the end of training
  a.bf16 = bf16;
  a.print_log = false;
  train(m, a, world);  // warm-up: one iteration, not counted
  bench::op_profile().seconds = {};
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
  bench::print_profile(stdout, iters, step_total);
  std::printf("  (outside the steps: train()'s setup, optimizer state and data index, %.1f ms once)\n",
              1e3 * (steps_s - step_total));
  return 0;
}
