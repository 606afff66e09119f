#include "train/trainer.h"

#include <fmt/core.h>

#include <cmath>
#include <memory>
#include <cstdio>

#include "core/log.h"
#include "core/timer.h"
#include "data/blended_dataset.h"
#include "model/flops.h"
#include "optim/grad_clip.h"
#include "optim/loss_scaler.h"
#include "checkpoint/native.h"
#include "train/checkpointing.h"
#include "train/heartbeat.h"
#include "train/tensorboard.h"

namespace cs {

namespace {
void validate(const TrainArgs& a, const Model& m) {
  if (a.micro_batch < 1 || a.global_batch < 1 || a.global_batch % a.micro_batch != 0)
    throw UsageError(fmt::format("--global-batch-size {} is not a multiple of --micro-batch-size {} "
                                 "(x data-parallel size 1)", a.global_batch, a.micro_batch));
  if (a.train_iters < 1) throw UsageError(fmt::format("--train-iters must be >= 1, got {}", a.train_iters));
  if (a.seq_length < 1 || a.seq_length > m.config().max_seq_length)
    throw UsageError(fmt::format("--seq-length {} must be in [1, {}] (the model's positions)",
                                 a.seq_length, m.config().max_seq_length));
  if (a.log_interval < 1) throw UsageError("--log-interval must be >= 1");
}
}  // namespace

TrainResult train(Model& model, const TrainArgs& a, const Ops& ops, Group& world) {
  validate(a, model);
  // Megatron's GPT dataset: the train split, shuffled, sized for the whole run; the validation
  // split sized for every evaluation (Megatron: (train_iters / eval_interval + 1) * eval_iters).
  const DataBlend blend = parse_data_path(a.data_path);
  const GptDatasetOptions dopt{a.seq_length, a.seed, a.data_cache_path};
  const BlendedDataset data = BlendedDataset::build_or_load(
      blend, a.split, DataSplit::kTrain, a.train_iters * a.global_batch, dopt, /*may_build=*/true);
  std::unique_ptr<BlendedDataset> valid;
  if (a.eval_iters > 0 && a.eval_interval > 0) {
    const int64_t n_valid = (a.train_iters / a.eval_interval + 1) * a.eval_iters * a.global_batch;
    try {
      valid = std::make_unique<BlendedDataset>(
          BlendedDataset::build_or_load(blend, a.split, DataSplit::kValid, n_valid, dopt, true));
    } catch (const Error& e) {
      std::fprintf(stderr, "[train] no validation: %s\n", e.what());
    }
  }
  AdamW adam(model.params(), a.adam, ops);
  LossScaler scaler(a.fp16, a.fp16 ? a.initial_loss_scale : 1.0, a.loss_scale_window, a.hysteresis,
                    a.min_loss_scale);
  MetricsWriter metrics(a.metrics_dir);
  std::unique_ptr<TensorBoardWriter> tb;
  if (!a.tensorboard_dir.empty()) tb = std::make_unique<TensorBoardWriter>(a.tensorboard_dir);
  const int64_t n_micro = a.global_batch / a.micro_batch, t = a.seq_length, b = a.micro_batch;
  std::vector<int32_t> sample(size_t(t + 1)), tokens(size_t(b * t)), targets(size_t(b * t));
  const double flops_per_iter = model_flops(model.config(), a.global_batch, t);
  Tensor grads = model.params().flat_grads();

  TrainResult r;
  TrainingState st;
  st.seed = a.seed;
  if (!a.resume_dir.empty()) {
    if (a.finetune) {
      load_training_checkpoint(a.resume_dir, model, nullptr, nullptr);  // weights only
    } else {
      st = load_training_checkpoint(a.resume_dir, model, a.load_optim ? &adam : nullptr, &scaler);
      r.consumed_samples = st.consumed_samples;
      // The sample order comes from --seed (as in Megatron): another seed continues the iteration
      // count on a different order, which is allowed but never what an exact resume wants.
      if (st.seed != a.seed)
        log_warn("[train] {} was trained with --seed {}, this run has --seed {}: the samples from here on "
                 "follow --seed {}, not the original order. Hint: pass --seed {} to continue the run exactly",
                 a.resume_dir, st.seed, a.seed, a.seed, st.seed);
      st.seed = a.seed;
    }
  }
  r.start_iteration = r.iterations = st.iteration;
  // The run directory's heartbeat (pulse reads it): --save, else the metrics directory.
  HeartbeatWriter heart(a.save_dir.empty() ? a.metrics_dir : a.save_dir, a.train_iters);
  std::string latest_ckpt;
  heart.beat(st.iteration, 0, "", true);
  // Validation: eval_iters global batches of the valid split, continuing where the last one
  // stopped (Megatron's validation iterator is not reset, and its cursor is checkpointed as
  // consumed_valid_samples, so a resumed run validates on the same samples); no gradients.
  int64_t valid_consumed = st.consumed_valid_samples;
  auto evaluate = [&](int64_t it) {
    double total = 0;
    for (int64_t k = 0; k < a.eval_iters * n_micro; ++k) {
      for (int64_t bi = 0; bi < b; ++bi) {
        valid->sample((valid_consumed++) % valid->num_samples(), sample.data());
        std::copy(sample.begin(), sample.end() - 1, tokens.begin() + bi * t);
        std::copy(sample.begin() + 1, sample.end(), targets.begin() + bi * t);
      }
      total += model.forward(tokens.data(), targets.data(), b, t);
    }
    const double loss = total / double(a.eval_iters * n_micro);
    r.valid_losses.push_back({it, loss});
    if (a.print_log)
      std::printf(" validation loss at iteration %lld | lm loss value: %.6E | lm loss PPL: %.6E |\n",
                  (long long)it, loss, std::exp(loss));
    metrics.write_validation(it, loss);
    if (tb) tb->scalars(it, {{"lm loss validation", loss}, {"lm loss validation ppl", std::exp(loss)}});
  };
  auto save = [&](int64_t it) {
    if (a.save_dir.empty()) return;
    st.iteration = it;
    st.consumed_samples = r.consumed_samples;
    st.consumed_valid_samples = valid_consumed;
    save_training_checkpoint(a.save_dir, st, model, adam, scaler, a.keep_last);
    latest_ckpt = a.save_dir + "/" + iteration_dir_name(it);
    heart.beat(it, r.losses.empty() ? 0 : r.losses.back(), latest_ckpt, true);
    if (a.print_log) std::printf("saved checkpoint at iteration %lld to %s\n", (long long)it, a.save_dir.c_str());
  };
  int64_t consecutive_nan = 0;
  // Interval accumulators (Megatron averages the loss over the interval's clean iterations).
  double interval_loss = 0, interval_s = 0, last_norm = 0;
  int64_t interval_clean = 0, interval_iters = 0, skipped_total = 0, nan_total = 0;
  for (int64_t it = st.iteration + 1; it <= a.train_iters; ++it) {
    Timer step_timer;
    model.zero_grad();
    const double loss_scale = scaler.scale();
    double loss = 0;
    for (int64_t mi = 0; mi < n_micro; ++mi) {
      for (int64_t bi = 0; bi < b; ++bi) {
        data.sample((r.consumed_samples + mi * b + bi) % data.num_samples(), sample.data());
        std::copy(sample.begin(), sample.end() - 1, tokens.begin() + bi * t);
        std::copy(sample.begin() + 1, sample.end(), targets.begin() + bi * t);
      }
      const double micro_loss = model.forward(tokens.data(), targets.data(), b, t);
      // d(loss_scale * mean over micro-batches of each micro-batch's mean loss)
      model.backward(float(loss_scale / (double(model.target_count()) * double(n_micro))));
      loss += micro_loss / double(n_micro);
    }
    r.consumed_samples += a.global_batch;
    if (a.grad_hook) a.grad_hook(it, grads);
    if (loss_scale != 1.0) ops.scale(grads, float(1.0 / loss_scale));
    const double norm = grad_norm_global(ops, grads, world);
    const bool found_inf = !std::isfinite(norm);
    const double lr = a.lr.lr(st.schedule_steps);  // Megatron: skipped steps do not advance it
    bool stepped = false;
    if (a.fp16 && found_inf) {
      ++r.skipped;
      ++skipped_total;
    } else if (found_inf || !std::isfinite(loss)) {
      ++r.nan;
      ++nan_total;
    } else {
      clip_grads(ops, grads, norm, a.clip_grad);
      adam.step(model.params(), lr);
      ++st.schedule_steps;
      stepped = true;
    }
    scaler.update(found_inf);
    consecutive_nan = (!std::isfinite(loss) || (found_inf && !a.fp16)) ? consecutive_nan + 1 : 0;
    r.losses.push_back(std::isfinite(loss) ? loss : NAN);
    r.iterations = it;
    if (stepped) { interval_loss += loss; ++interval_clean; last_norm = norm; }
    interval_s += step_timer.seconds();
    ++interval_iters;

    const bool stop = a.exit_on_nan > 0 && consecutive_nan >= a.exit_on_nan;
    if (it % a.log_interval == 0 || it == a.train_iters || stop) {
      LogRecord rec;
      rec.iteration = it;
      rec.train_iters = a.train_iters;
      rec.consumed_samples = r.consumed_samples;
      rec.global_batch = a.global_batch;
      const double step_s = interval_s / double(interval_iters);
      rec.elapsed_ms_per_iter = step_s * 1e3;
      rec.learning_rate = lr;
      rec.lm_loss = interval_clean ? interval_loss / double(interval_clean) : NAN;
      rec.loss_scale = loss_scale;
      rec.grad_norm = last_norm;
      rec.skipped_iters = skipped_total;
      rec.nan_iters = nan_total;
      const double world_size = double(world.size());
      rec.samples_per_s_per_device = double(a.global_batch) / step_s / world_size;
      rec.tokens_per_s_per_device = rec.samples_per_s_per_device * double(t);
      rec.tflops_per_device = flops_per_iter / step_s / world_size / 1e12;
      if (a.print_log) std::printf("%s\n", format_log_line(rec).c_str());
      std::fflush(stdout);
      metrics.write(rec);
      if (tb)  // Megatron's tag names
        tb->scalars(it, {{"lm loss", rec.lm_loss}, {"learning-rate", rec.learning_rate},
                         {"loss-scale", rec.loss_scale}, {"grad-norm", rec.grad_norm},
                         {"tokens-per-second-per-device", rec.tokens_per_s_per_device},
                         {"tflops-per-device", rec.tflops_per_device}});
      r.records.push_back(rec);
      interval_loss = interval_s = 0;
      interval_clean = interval_iters = skipped_total = nan_total = 0;
    }
    if (valid && it % a.eval_interval == 0) evaluate(it);
    heart.beat(it, loss, "");
    const bool signalled = a.stop && a.stop->load();
    const bool exit_now = a.exit_interval > 0 && it % a.exit_interval == 0 && it < a.train_iters;
    if ((a.save_interval > 0 && it % a.save_interval == 0) || it == a.train_iters || signalled || exit_now)
      save(it);
    if (exit_now) {
      r.stopped_by_exit_interval = true;
      std::fprintf(stderr, "[train] --exit-interval %lld: saved at iteration %lld, exiting\n",
                   (long long)a.exit_interval, (long long)it);
      break;
    }
    if (signalled) {
      r.stopped_by_signal = true;
      std::fprintf(stderr, "[train] stop requested (signal): saved at iteration %lld, exiting\n", (long long)it);
      break;
    }
    if (stop) {
      r.stopped_on_nan = true;
      heart.finish("failed");
      std::fprintf(stderr, "[train] stopping: %lld non-finite iterations in a row (--exit-on-nan %lld)\n",
                   (long long)consecutive_nan, (long long)a.exit_on_nan);
      break;
    }
  }
  if (!r.stopped_on_nan) heart.finish(r.iterations >= a.train_iters ? "finished" : "stopped");
  return r;
}

}  // namespace cs
