#include "train/metrics.h"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace cs {

std::string format_log_line(const LogRecord& r) {
  return fmt::format(" iteration {:8d}/{:8d} | consumed samples: {:12d} | elapsed time per iteration (ms): {:.1f} | "
                     "learning rate: {:.6E} | global batch size: {:5d} |",
                     r.iteration, r.train_iters, r.consumed_samples, r.elapsed_ms_per_iter, r.learning_rate,
                     r.global_batch) +
         (r.has_loss ? fmt::format(" lm loss: {:.6E} |", r.lm_loss) : std::string()) +
         fmt::format(" loss scale: {:.1f} |", r.loss_scale) +
         (r.has_grad_norm ? fmt::format(" grad norm: {:.3f} |", r.grad_norm) : std::string()) +
         (r.num_zeros >= 0 ? fmt::format(" num zeros: {:.1f} |", r.num_zeros) : std::string()) +
         (r.params_norm >= 0 ? fmt::format(" params norm: {:.3f} |", r.params_norm) : std::string()) +
         fmt::format(" number of skipped iterations: {:3d} | number of nan iterations: {:3d} | "
                     "samples/s/p: {:.3f} | tokens/s/p: {:.1f} | TFLOPs/p: {:.4f} |",
                     r.skipped_iters, r.nan_iters, r.samples_per_s_per_device, r.tokens_per_s_per_device,
                     r.tflops_per_device) +
         (r.trained_tokens >= 0 ? fmt::format(" trained tokens: {} |", r.trained_tokens) : std::string());
}

std::string format_jsonl(const LogRecord& r) {
  nlohmann::ordered_json j = {
      {"iteration", r.iteration}, {"train_iters", r.train_iters},
      {"consumed_samples", r.consumed_samples}, {"elapsed_ms_per_iter", r.elapsed_ms_per_iter},
      {"learning_rate", r.learning_rate}, {"global_batch_size", r.global_batch}};
  if (r.has_loss) j["lm_loss"] = r.lm_loss;
  j["loss_scale"] = r.loss_scale;
  if (r.has_grad_norm) j["grad_norm"] = r.grad_norm;
  if (r.num_zeros >= 0) j["num_zeros"] = r.num_zeros;
  if (r.params_norm >= 0) j["params_norm"] = r.params_norm;
  j["skipped_iterations"] = r.skipped_iters;
  j["nan_iterations"] = r.nan_iters;
  j["samples_per_s_per_device"] = r.samples_per_s_per_device;
  j["tokens_per_s_per_device"] = r.tokens_per_s_per_device;
  j["tflops_per_device"] = r.tflops_per_device;
  if (r.trained_tokens >= 0) j["trained_tokens"] = r.trained_tokens;
  return j.dump();
}

MetricsWriter::MetricsWriter(const std::string& dir) {
  if (dir.empty()) return;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  path_ = dir + "/metrics.jsonl";
  f_ = std::fopen(path_.c_str(), "a");
  if (!f_) throw Error(fmt::format("[train] cannot write {}. Hint: check --save / --log-dir", path_));
}

MetricsWriter::~MetricsWriter() {
  if (f_) std::fclose(f_);
}

double megatron_ppl(double loss) { return std::exp(std::min(20.0, loss)); }

void MetricsWriter::write_validation(int64_t iteration, double loss, bool test, bool end_of_training) {
  if (!f_) return;
  nlohmann::ordered_json j = {{"iteration", iteration}};
  if (end_of_training) j["end_of_training"] = true;
  j[test ? "test_lm_loss" : "valid_lm_loss"] = loss;
  j[test ? "test_ppl" : "valid_ppl"] = megatron_ppl(loss);
  std::fprintf(f_, "%s\n", j.dump().c_str());
  std::fflush(f_);
}

void MetricsWriter::write(const LogRecord& r) {
  if (!f_) return;
  std::fprintf(f_, "%s\n", format_jsonl(r).c_str());
  std::fflush(f_);
}

}  // namespace cs
