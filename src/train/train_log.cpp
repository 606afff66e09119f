#include "train/train_log.h"

#include <fmt/core.h>

#include <cmath>
#include <cstdio>

namespace cs {

TrainLog::TrainLog(const TrainLogConfig& cfg)
    : cfg_(cfg), metrics_(cfg.writer ? cfg.metrics_dir : std::string()) {
  if (cfg.writer && !cfg.tensorboard_dir.empty()) tb_ = std::make_unique<TensorBoardWriter>(cfg.tensorboard_dir);
}

void TrainLog::add(const StepOutcome& o, double seconds, double lr, int64_t global_batch) {
  if (o.stepped) {
    loss_ += o.loss;
    ++clean_;
  }
  // The logged grad norm is the interval's last iteration's (Megatron's), unknown when it was skipped.
  last_norm_known_ = !o.skipped;
  if (!o.skipped) last_norm_ = o.grad_norm;
  last_zeros_ = o.skipped ? -1 : o.num_zeros;  // Megatron has no count for a skipped iteration
  skipped_ += o.skipped;
  nan_ += o.nan;
  trained_ += o.trained_tokens;
  seconds_ += seconds;
  samples_ += global_batch;
  last_batch_ = global_batch;
  ++iters_;
  last_lr_ = lr;
  last_scale_ = o.next_loss_scale;
}

LogRecord TrainLog::flush(int64_t iteration, int64_t consumed_samples, double params_norm) {
  LogRecord rec;
  rec.iteration = iteration;
  rec.train_iters = cfg_.train_iters;
  rec.consumed_samples = consumed_samples;
  rec.global_batch = last_batch_;  // Megatron's line shows the current batch
  const double step_s = seconds_ / double(iters_);
  rec.elapsed_ms_per_iter = step_s * 1e3;
  rec.learning_rate = last_lr_;
  // No iteration stepped (all skipped or non-finite): no loss, as Megatron prints none; the
  // skipped and nan counts of the line say which.
  rec.lm_loss = clean_ ? loss_ / double(clean_) : NAN;
  rec.has_loss = clean_ > 0;
  rec.loss_scale = last_scale_;
  rec.grad_norm = last_norm_;
  rec.has_grad_norm = last_norm_known_;
  rec.params_norm = params_norm;
  rec.num_zeros = last_zeros_;
  rec.skipped_iters = skipped_;
  rec.nan_iters = nan_;
  if (cfg_.instruction) rec.trained_tokens = trained_;
  const double world = double(cfg_.world_size);
  rec.samples_per_s_per_device = double(samples_) / seconds_ / world;
  rec.tokens_per_s_per_device = rec.samples_per_s_per_device * double(cfg_.seq_length);
  rec.tflops_per_device = cfg_.flops_per_sample * rec.samples_per_s_per_device / 1e12;
  if (cfg_.writer) {
    if (cfg_.print) std::printf("%s\n", format_log_line(rec).c_str());
    std::fflush(stdout);
    metrics_.write(rec);
    if (tb_) {  // Megatron's tag names, each also " vs samples" (its step: the consumed samples)
      std::vector<std::pair<std::string, double>> s;
      const TensorBoardTags& t = cfg_.tags;
      if (rec.has_loss) s.emplace_back("lm loss", rec.lm_loss);
      if (t.learning_rate) s.emplace_back("learning-rate", rec.learning_rate);
      s.emplace_back("batch-size", double(rec.global_batch));
      if (t.loss_scale) s.emplace_back("loss-scale", rec.loss_scale);
      if (t.world_size) s.emplace_back("world-size", double(cfg_.world_size));
      if (rec.has_grad_norm && t.grad_norm) s.emplace_back("grad-norm", rec.grad_norm);
      if (rec.num_zeros >= 0) s.emplace_back("num-zeros", rec.num_zeros);
      if (rec.params_norm >= 0) s.emplace_back("params-norm", rec.params_norm);
      scalars_with_samples(iteration, consumed_samples, s);
      tb_->scalars(iteration, {{"tokens-per-second-per-device", rec.tokens_per_s_per_device},
                               {"tflops-per-device", rec.tflops_per_device}});
    }
  }
  loss_ = seconds_ = 0;
  clean_ = iters_ = skipped_ = nan_ = trained_ = samples_ = 0;
  return rec;
}

void TrainLog::scalars_with_samples(int64_t iteration, int64_t consumed_samples,
                                    std::vector<std::pair<std::string, double>> s) {
  tb_->scalars(iteration, s);
  for (auto& [tag, value] : s) tag += " vs samples";
  tb_->scalars(consumed_samples, s);
}

void TrainLog::validation(const std::string& at, int64_t iteration, int64_t consumed_samples, double loss, bool test,
                          bool end_of_training) {
  if (!cfg_.writer) return;
  const double ppl = megatron_ppl(loss);
  if (cfg_.print) {
    const std::string line = fmt::format(" validation loss at {} | lm loss value: {:.6E} | lm loss PPL: {:.6E} | ", at,
                                         loss, ppl);
    const std::string dashes(line.size() + 1, '-');
    std::printf("%s\n%s\n%s\n", dashes.c_str(), line.c_str(), dashes.c_str());
  }
  std::fflush(stdout);
  metrics_.write_validation(iteration, loss, test, end_of_training);
  if (tb_)
    scalars_with_samples(iteration, consumed_samples, {{test ? "lm loss test" : "lm loss validation", loss},
                                                       {test ? "lm loss test ppl" : "lm loss validation ppl", ppl}});
}

}  // namespace cs
