// make bench, the C++ half: (1) this machine's sgemm peak (the MFU denominator), (2) model
// forward+backward tokens/s, GFLOP/s and MFU for the small config, (3) the flash attention
// kernel against the naive one at T = 512, 2048, 4096: time and peak memory (each variant in a
// forked child so its high-water RSS is its own). Prints a table and one JSON line per figure.
// Medians of repeated runs; the machine is noisy.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cpu/ops.h"
#include "core/buffer.h"
#include "core/philox.h"
#include "core/timer.h"
#include "model/flops.h"
#include "model/model.h"

namespace cs {
namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// The GEMM peak of 2048^3 through the op table: f32 operands (sgemm), or bf16 operands (oneDNN,
// f32 accumulation: the --bf16 denominator).
double gemm_peak_gflops(bool bf16 = false) {
  const int64_t n = 2048;
  Buffer a(size_t(n * n) * 4), b(size_t(n * n) * 4), c(size_t(n * n) * 4), a16(size_t(n * n) * 2),
      b16(size_t(n * n) * 2);
  philox_fill_normal(a.f32(), n * n, 1, 0, 0, 1);
  philox_fill_normal(b.f32(), n * n, 2, 0, 0, 1);
  Tensor ta = a.tensor({n, n}), tb = b.tensor({n, n}), tc = c.tensor({n, n});
  auto ctx = cpu_backend().make_context();
  if (bf16) {
    const Tensor ha = a16.tensor({n, n}, DType::BF16), hb = b16.tensor({n, n}, DType::BF16);
    cpu_ops().cast(*ctx, ta, ha);
    cpu_ops().cast(*ctx, tb, hb);
    ta = ha;
    tb = hb;
  }
  std::vector<double> t;
  for (int i = 0; i < 6; ++i) {
    Timer tm;
    cpu_ops().matmul(*ctx, ta, false, tb, true, tc, 1, 0);
    if (i) t.push_back(tm.seconds());
  }
  return 2.0 * n * n * n / median(t) / 1e9;
}

void model_bench(double peak, const std::string& position, int iters) {
  ModelConfig cfg = model_preset("small");
  cfg.position = position == "alibi" ? PositionType::Alibi : PositionType::Rope;
  const int64_t b = 4, t = 512, n = b * t;
  SingleGroup tp;
  auto ctx = cpu_backend().make_context();
  Model m(cfg, *ctx, tp, b, t);
  m.params().init(*ctx, 1);
  std::vector<int32_t> tok(static_cast<size_t>(n)), tgt(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) { tok[size_t(i)] = int32_t((i * 7919) % cfg.vocab_size); tgt[size_t(i)] = int32_t((i * 104729 + 1) % cfg.vocab_size); }
  std::vector<double> times;
  for (int i = 0; i <= iters; ++i) {
    Timer tm;
    m.forward(tok.data(), tgt.data(), b, t);
    m.backward();
    if (i) times.push_back(tm.seconds());  // iteration 0 warms up
  }
  const double s = median(times), gflops = model_flops(cfg, b, t) / s / 1e9;
  std::printf("model fwd+bwd  %-5s D=512 L=8 H=8 T=512 B=4 V=32000: %8.1f tokens/s  %7.1f GFLOP/s  MFU %.1f%%  (median of %d, %.3f s/step, activations %.0f MiB, peak RSS %.0f MiB)\n",
              position.c_str(), double(n) / s, gflops, 100 * gflops / peak, iters, s,
              double(m.activation_bytes()) / 1048576.0, double(peak_rss_bytes()) / 1048576.0);
  std::printf("{\"impl\":\"chuanspeed\",\"bench\":\"model\",\"position\":\"%s\",\"tokens_per_s\":%.2f,\"gflops_per_s\":%.2f,\"mfu\":%.4f,\"step_s_median\":%.5f}\n",
              position.c_str(), double(n) / s, gflops, gflops / peak, s);
}

// Runs one attention variant (fwd + bwd) in this process; prints "seconds peak_rss_growth".
// main() runs it in a fresh child process (exec, not fork: libgomp's pool does not survive fork),
// so each variant's high-water RSS is its own.
int attention_child(bool naive, int64_t t_len) {
  const int64_t b = 1, h = 8, hd = 64, n = b * h * t_len * hd;
  const double rss0 = double(peak_rss_bytes());
  Buffer buf(size_t(8 * n + b * h * t_len) * 4);
  float* p = buf.f32();
  for (int i = 0; i < 4; ++i) philox_fill_normal(p + i * n, n, uint64_t(i + 1), 0, 0, 1);
  const Shape s{b, h, t_len, hd};
  Tensor qt(p, s), kt(p + n, s), vt(p + 2 * n, s), dt(p + 3 * n, s), ot(p + 4 * n, s);
  Tensor dqt(p + 5 * n, s), dkt(p + 6 * n, s), dvt(p + 7 * n, s), lt(p + 8 * n, {b, h, t_len}), none(nullptr, {0});
  auto ctx = cpu_backend().make_context();
  std::vector<double> times;
  const int reps = naive && t_len >= 2048 ? 1 : 3;
  for (int i = 0; i < reps; ++i) {
    Timer tm;
    if (naive) {
      cpu::attention_naive_forward(*ctx, qt, kt, vt, none, ot, lt);
      cpu::attention_naive_backward(*ctx, qt, kt, vt, none, ot, lt, dt, dqt, dkt, dvt);
    } else {
      cpu::attention_forward(*ctx, qt, kt, vt, none, none, ot, lt);
      cpu::attention_backward(*ctx, qt, kt, vt, none, none, ot, lt, dt, dqt, dkt, dvt);
    }
    times.push_back(tm.seconds());
  }
  std::printf("%.6f %.0f\n", median(times), double(peak_rss_bytes()) - rss0);
  return 0;
}

// The flash kernel's rate on the small config's attention (B=4, H=8, T=512, Hd=64, causal), fwd +
// bwd, f32 or bf16 q, k, v, o, dout: GFLOP/s over the causal FLOPs the tiles must do, 7 products
// of T^2 Hd / 2 multiply-adds each (forward Q K^T, P V; backward the scores again, dO V^T,
// P^T dO, dS K, dS^T Q): 7 B H T^2 Hd FLOPs.
double attention_gflops(bool bf16, int iters) {
  const int64_t b = 4, h = 8, t_len = 512, hd = 64, n = b * h * t_len * hd;
  const DType io = bf16 ? DType::BF16 : DType::F32;
  Buffer f(size_t(n) * 4 * 4 + size_t(b * h * t_len) * 4), x(size_t(n) * 5 * (bf16 ? 2 : 4));
  float* p = f.f32();
  for (int i = 0; i < 3; ++i) philox_fill_normal(p + i * n, n, uint64_t(i + 1), 0, 0, 1);
  const Shape s{b, h, t_len, hd};
  auto ctx = cpu_backend().make_context();
  const size_t es = bf16 ? 2 : 4;
  auto xt = [&](int i) { return Tensor(static_cast<char*>(x.data()) + size_t(i * n) * es, s, io); };
  Tensor qt = xt(0), kt = xt(1), vt = xt(2), ot = xt(3), dt = xt(4), none(nullptr, {0});
  for (int i : {0, 1, 2}) cpu::cast(*ctx, Tensor(p + i * n, s), xt(i));
  cpu::cast(*ctx, Tensor(p + 2 * n, s), dt);  // dout: v's values
  Tensor dqt(p, s), dkt(p + n, s), dvt(p + 2 * n, s), lt(p + 3 * n, {b, h, t_len});
  std::vector<double> times;
  for (int i = 0; i < iters + 1; ++i) {
    Timer tm;
    cpu::attention_forward(*ctx, qt, kt, vt, none, none, ot, lt);
    cpu::attention_backward(*ctx, qt, kt, vt, none, none, ot, lt, dt, dqt, dkt, dvt);
    if (i) times.push_back(tm.seconds());  // the first call warms the caches and packs
  }
  return 7.0 * double(b * h) * double(t_len * t_len) * double(hd) / median(times) / 1e9;
}

std::pair<double, double> attention_variant(const char* self, bool naive, int64_t t_len) {
  const std::string cmd = std::string(self) + " --attention-child " + (naive ? "naive " : "flash ") +
                          std::to_string(t_len);
  FILE* f = popen(cmd.c_str(), "r");
  double sec = -1, mem = -1;
  if (!f || std::fscanf(f, "%lf %lf", &sec, &mem) != 2) sec = mem = -1;
  if (f) pclose(f);
  return {sec, mem};
}

}  // namespace
}  // namespace cs

int main(int argc, char** argv) {
  using namespace cs;
  if (argc == 4 && std::string(argv[1]) == "--attention-child")
    return attention_child(std::string(argv[2]) == "naive", std::atoll(argv[3]));
  // model_bench [iters] | --sgemm-only | --attention-only [iters [fp32|bf16]] (the last: for profiling)
  const bool att_only = argc > 1 && std::string(argv[1]) == "--attention-only";
  const char* iters_arg = att_only ? (argc > 2 ? argv[2] : "") : (argc > 1 ? argv[1] : "");
  const int iters = std::atoi(iters_arg) > 0 ? std::atoi(iters_arg) : 5;
  const std::string att_precision = att_only && argc > 3 ? argv[3] : "";
  if (!att_precision.empty() && att_precision != "fp32" && att_precision != "bf16") {
    std::fprintf(stderr, "model_bench: --attention-only [iters [fp32|bf16]]: unknown precision '%s'\n",
                 att_precision.c_str());
    return 2;
  }
  setvbuf(stdout, nullptr, _IOLBF, 0);  // line-buffered: figures appear as they are measured
  const double peak = gemm_peak_gflops();
  std::printf("sgemm 2048^3 (OpenBLAS, OpenMP build): %.1f GFLOP/s  <- MFU denominator\n", peak);
  std::printf("{\"impl\":\"chuanspeed\",\"bench\":\"sgemm\",\"gflops_per_s\":%.2f}\n", peak);
  if (argc > 1 && std::string(argv[1]) == "--sgemm-only") return 0;  // other benches' busy-machine check
  const double peak16 = gemm_peak_gflops(true);
  std::printf("bf16 GEMM 2048^3 (oneDNN, f32 accumulation): %.1f GFLOP/s  <- --bf16 MFU denominator\n", peak16);
  std::printf("{\"impl\":\"chuanspeed\",\"bench\":\"bf16_gemm\",\"gflops_per_s\":%.2f}\n", peak16);
  for (bool bf16 : {false, true}) {
    if (att_precision == (bf16 ? "fp32" : "bf16")) continue;
    const double g = attention_gflops(bf16, iters), base = bf16 ? peak16 : peak;
    std::printf("flash attention fwd+bwd %s (B=4 H=8 T=512 Hd=64, causal): %.1f GFLOP/s = %.0f%% of the %s GEMM rate\n",
                bf16 ? "bf16" : "f32 ", g, 100 * g / base, bf16 ? "bf16" : "f32");
    std::printf("{\"impl\":\"chuanspeed\",\"bench\":\"attention_rate\",\"precision\":\"%s\",\"gflops_per_s\":%.2f,\"of_gemm\":%.4f}\n",
                bf16 ? "bf16" : "fp32", g, g / base);
  }
  if (att_only) return 0;
  model_bench(peak, "rope", iters);
  model_bench(peak, "alibi", iters);
  for (int64_t t : {512, 2048, 4096}) {
    auto [fs, fm] = attention_variant(argv[0], false, t);
    auto [ns, nm] = attention_variant(argv[0], true, t);
    std::printf("attention fwd+bwd B=1 H=8 Hd=64 T=%-5lld flash %8.1f ms %7.1f MiB | naive %8.1f ms %7.1f MiB | speed-up %.2fx\n",
                (long long)t, fs * 1e3, fm / 1048576.0, ns * 1e3, nm / 1048576.0, ns / fs);
    std::printf("{\"impl\":\"chuanspeed\",\"bench\":\"attention\",\"T\":%lld,\"flash_ms\":%.2f,\"flash_peak_mib\":%.1f,\"naive_ms\":%.2f,\"naive_peak_mib\":%.1f}\n",
                (long long)t, fs * 1e3, fm / 1048576.0, ns * 1e3, nm / 1048576.0);
  }
  return 0;
}
