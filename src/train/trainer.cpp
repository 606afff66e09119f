#include "train/trainer.h"

#include <fmt/core.h>

#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <vector>

#include "checkpoint/native.h"
#include "core/checked.h"
#include "core/log.h"
#include "core/timer.h"
#include "parallel/mpi_group.h"
#include "data/blended_dataset.h"
#include "model/flops.h"
#include "optim/loss_scaler.h"
#include "backend/host_copy.h"
#include "train/checkpointing.h"
#include "train/datasets.h"
#include "train/heartbeat.h"
#include "train/thread_governor.h"
#include "train/train_log.h"
#include "train/train_step.h"
#include "train/validation.h"

namespace cs {

namespace {
void validate(const TrainArgs& a, const Model& m, int dp) {
  if (a.micro_batch < 1 || a.global_batch < 1 || a.global_batch % (a.micro_batch * dp) != 0)
    throw UsageError(fmt::format("--global-batch-size {} is not a multiple of --micro-batch-size {} "
                                 "x data-parallel size {}", a.global_batch, a.micro_batch, dp));
  if (a.train_iters < 1 && !a.skip_train) throw UsageError(fmt::format("--train-iters must be >= 1, got {}", a.train_iters));
  if (a.seq_length < 1 || a.seq_length > m.config().max_seq_length)
    throw UsageError(fmt::format("--seq-length {} must be in [1, {}] (the model's positions)",
                                 a.seq_length, m.config().max_seq_length));
  if (a.log_interval < 1) throw UsageError("--log-interval must be >= 1");
  a.rampup.check(a.global_batch);  // (its batches' split: once the consumed samples are known)
  check_eval_batches(a, dp);
}


// Each value of `here` summed over the ranks of world, through the F64 device tensor t (one
// element per value): how the ranks agree on a decision each took alone.
std::vector<double> sum_over_ranks(Ctx& ctx, Group& world, const Tensor& t, std::initializer_list<double> here) {
  if (world.size() == 1) return here;
  ctx.backend.upload(ctx, std::data(here), t);
  world.all_reduce_sum(ctx, t);
  return read_f64(ctx, t);
}

// Every rank must evaluate the same splits (the evaluations are collectives): each opened them
// alone, and a rank that could not read one (the index cache rank 0 built, not visible to it)
// would otherwise skip it while the others wait. Megatron broadcasts its do_valid / do_test.
void agree_on_splits(Ctx& ctx, Group& world, const Datasets& d) {
  const DeviceBuffer mem(ctx.backend, 2 * sizeof(double));
  const std::vector<double> n =
      sum_over_ranks(ctx, world, mem.tensor({2}, DType::F64), {d.has_valid() ? 1.0 : 0.0, d.has_test() ? 1.0 : 0.0});
  for (int i = 0; i < 2; ++i)
    if (n[size_t(i)] > 0 && n[size_t(i)] < world.size())
      throw Error(fmt::format("[train] the {} split was read on {} of {} ranks. Hint: every rank must be able to read "
                              "the data and the index cache rank 0 builds beside it (or in --data-cache-path)",
                              i == 0 ? "validation" : "test", n[size_t(i)], world.size()));
}

// Loads --load's state as the flags ask: weights only (finetune) or the whole run; the returned
// state's scheduler holds the settings to train with.
TrainingState resume(const TrainArgs& a, Model& model, AdamW& adam, LossScaler& scaler, TrainResult& r, bool say) {
  TrainingState st;
  st.seed = a.seed;
  st.scheduler = a.scheduler_settings();
  if (a.resume_dir.empty()) return st;
  if (a.finetune) {
    load_training_checkpoint(a.resume_dir, model, nullptr, nullptr, a.resume_step);  // weights only
    adam.load_master(model.params());
    return st;
  }
  const SchedulerSettings here = *st.scheduler;
  st = load_training_checkpoint(a.resume_dir, model, a.load_optim ? &adam : nullptr, a.load_optim ? &scaler : nullptr,
                                a.resume_step);
  if (a.load_optim) {
    st.scheduler = settle_scheduler(here, st.scheduler, a.scheduler_on_resume, a.resume_dir, say);
  } else {  // Megatron's --no-load-optim: the scheduler (and the loss scaler) start afresh too
    adam.load_master(model.params());
    st.schedule_steps = st.schedule_samples = 0;
    st.scheduler = here;
  }
  r.consumed_samples = st.consumed_samples;
  // The sample order comes from --seed (as in Megatron): another seed continues the iteration
  // count on a different order, which is allowed but never what an exact resume wants.
  if (st.seed_known && st.seed != a.seed)
    log_warn("[train] {} was trained with --seed {}, this run has --seed {}: the samples from here on "
             "follow --seed {}, not the original order. Hint: pass --seed {} to continue the run exactly",
             a.resume_dir, st.seed, a.seed, a.seed, st.seed);
  st.seed = a.seed;
  st.seed_known = true;
  return st;
}

// Megatron's --skip-train: the loaded weights (no optimizer state: none is allocated) evaluated on
// eval_iters global batches of the validation and of the test split, each from its first sample,
// at the loaded iteration; nothing is written (TrainArgs leaves the run's folders out).
TrainResult evaluate_only(Model& model, const TrainArgs& a, Group& world, Group& dp, Group* pp, const Datasets& data) {
  TrainResult r;
  if (!a.resume_dir.empty()) {
    const TrainingState st = load_training_checkpoint(a.resume_dir, model, nullptr, nullptr, a.resume_step);
    if (!a.finetune) r.start_iteration = r.iterations = st.iteration, r.consumed_samples = st.consumed_samples;
  }
  if (!data.has_valid() && !data.has_test())
    throw Error("[train] --skip-train: there is no validation or test split to evaluate. Hint: give --split a "
                "validation or test share, or pass --valid-data-path / --test-data-path");
  const int64_t t = a.seq_length;
  TrainLog log({a.train_iters, t, world.size(), model_flops(model.config(), 1, t), a.print_log, world.rank() == 0,
                a.instruction, a.metrics_dir, a.tensorboard_dir, a.tensorboard_tags});
  MicroBatch batch(a.eval_mbs(), t, a.eod);
  const SampleSource* splits[2] = {&data.valid_src, &data.test_src};
  double* losses[2] = {&r.end_valid_loss, &r.test_loss};
  for (int i = 0; i < 2; ++i) {
    if (!splits[i]->gpt && !splits[i]->sft) continue;
    Validator v(model, *splits[i], dp, a.eval_iters * (a.eval_gb() / a.eval_mbs()), 0, pp, a.per_token_loss());
    *losses[i] = v.evaluate(batch);
    log.validation(fmt::format("iteration {} on {} set", r.iterations, i == 0 ? "validation" : "test"), r.iterations,
                   r.consumed_samples, *losses[i], i == 1, true);
  }
  return r;
}

// Which stops any rank asked for: a signal (it reaches the ranks of mpirun at different moments)
// and --exit-duration-in-mins (each rank's own clock). The ranks must agree, or one would leave the
// loop while the others wait in a collective (Megatron all-reduces its duration flag with MAX).
// flags: an F64 [2] device tensor to agree through.
struct Stops {
  bool signal = false, duration = false;
};
Stops any_rank_stops(Ctx& ctx, Group& world, const Tensor& flags, Stops here) {
  const std::vector<double> n = sum_over_ranks(ctx, world, flags, {here.signal ? 1.0 : 0.0, here.duration ? 1.0 : 0.0});
  return {n[0] > 0, n[1] > 0};
}
}  // namespace

void check_eval_batches(const TrainArgs& a, int64_t dp) {
  if (a.eval_gb() % (a.eval_mbs() * dp) != 0)
    throw UsageError(fmt::format("--eval-global-batch-size {} is not a multiple of --eval-micro-batch-size {} x "
                                 "data-parallel size {}", a.eval_gb(), a.eval_mbs(), dp));
  if (a.eval_mbs() > a.micro_batch)
    throw UsageError(fmt::format("--eval-micro-batch-size {} above --micro-batch-size {}: the activations are planned "
                                 "for the training micro-batch. Hint: at most {}", a.eval_mbs(), a.micro_batch,
                                 a.micro_batch));
}

SchedulerSettings settle_scheduler(const SchedulerSettings& here, const std::optional<SchedulerSettings>& stored,
                                   SchedulerOnResume policy, const std::string& dir, bool say) {
  if (!stored) return here;  // a checkpoint from before the settings were kept
  std::string list;
  for (const SettingDifference& d : differences(here, *stored))
    list += fmt::format("{}{} {} (the checkpoint's {})", list.empty() ? "" : ", ", d.name, d.here, d.checkpoint);
  if (list.empty()) return here;
  if (policy == SchedulerOnResume::Check)
    throw UsageError(fmt::format(
        "--load {}: this run's learning-rate schedule differs from the checkpoint's: {}. Hint: pass the checkpoint's "
        "values, or add --override-opt_param-scheduler to train with this command line's, or "
        "--use-checkpoint-opt_param-scheduler to train with the checkpoint's", dir, list));
  const bool use_here = policy == SchedulerOnResume::Override;
  if (say)
    log_info("[train] {}: the schedule continues with {} settings: {}",
             use_here ? "--override-opt_param-scheduler" : "--use-checkpoint-opt_param-scheduler",
             use_here ? "this command line's" : "the checkpoint's", list);
  if (use_here) return here;
  // Megatron keeps no WSD anneal in its checkpoint: the command line's is used either way.
  if (stored->lr.style == LrDecay::WSD && here.lr.style != LrDecay::WSD && here.lr.wsd_decay_steps == 0)
    throw UsageError(fmt::format("--load {}: --use-checkpoint-opt_param-scheduler takes the checkpoint's WSD schedule, "
                                 "whose anneal length a checkpoint does not keep. Hint: add --lr-wsd-decay-iters N "
                                 "(or --lr-wsd-decay-samples N)", dir));
  SchedulerSettings out = *stored;
  out.lr.wsd_decay_steps = here.lr.wsd_decay_steps;
  out.lr.wsd_style = here.lr.wsd_style;
  return out;
}

TrainResult train(Model& model, const TrainArgs& a, Group& world, Group& dp, Group* pp) {
  const auto started = a.started.value_or(std::chrono::steady_clock::now());
  auto seconds_since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  };
  validate(a, model, dp.size());
  const bool writer = world.rank() == 0;
  // Rank 0 builds the sample index cache; the others wait for it, then load it.
  Datasets data;
  if (writer) data = open_datasets(a, true, true);
  world.barrier(model.ctx());
  if (!writer) data = open_datasets(a, false, false);
  agree_on_splits(model.ctx(), world, data);
  order_samples(data, a, dp.size());
  if (a.skip_train) return evaluate_only(model, a, world, dp, pp, data);
  const bool shard = a.distributed_optimizer && dp.size() > 1;
  if (shard) model.params().pad_to(model.ctx(), dp.size());
  AdamW adam(model.params(), a.adam, model.ctx(), shard ? &dp : nullptr);
  // fp16: dynamic, or Megatron's constant scale (an overflowing step is still skipped).
  LossScaler scaler(a.fp16 && a.static_loss_scale <= 0,
                    !a.fp16 ? 1.0 : a.static_loss_scale > 0 ? a.static_loss_scale : a.initial_loss_scale,
                    a.loss_scale_window, a.hysteresis, a.min_loss_scale);
  const int64_t n_micro = a.global_batch / a.micro_batch, t = a.seq_length, b = a.micro_batch;
  TrainLog log({a.train_iters, t, world.size(), model_flops(model.config(), 1, t), a.print_log, writer, a.instruction,
                a.metrics_dir, a.tensorboard_dir, a.tensorboard_tags});
  CS_CHECK(!a.eod.any() || a.eod.eod >= 0) << "end-of-document flags without an end-of-document id";
  MicroBatch batch(b, t, a.eod), eval_batch(a.eval_mbs(), t, a.eod);
  const int64_t eval_micro = a.eval_iters * (a.eval_gb() / a.eval_mbs());  // an evaluation's micro-batches
  TrainStep step(model, adam, scaler, dp, n_micro, a.clip_grad, a.fp16, pp, a.per_token_loss());
  step.count_zeros(a.log_num_zeros);

  TrainResult r;
  TrainingState st = resume(a, model, adam, scaler, r, writer && a.print_log);
  // Every batch the run takes from here must split over the data-parallel ranks.
  a.rampup.check_split(a.global_batch, b, dp.size(), r.consumed_samples);
  const LrSchedule schedule = st.scheduler->lr;
  r.start_iteration = r.iterations = st.iteration;
  std::unique_ptr<Validator> validator;
  if (data.has_valid())
    validator = std::make_unique<Validator>(model, data.valid_src, dp, eval_micro,
                                            st.consumed_valid_samples, pp, a.per_token_loss());
  // The run directory's heartbeat (pulse reads it): --save, else the metrics directory.
  HeartbeatWriter heart(writer ? (a.save_dir.empty() ? a.metrics_dir : a.save_dir) : std::string(), a.train_iters,
                        a.heartbeat_interval);
  heart.beat(st.iteration, 0, "", true);
  const std::function<void()> alive = [&] { heart.alive(); };  // evaluations are no stall either
  int64_t last_saved = -1;
  auto save = [&](int64_t it) {
    if (a.save_dir.empty() || it == last_saved) return;
    last_saved = it;
    st.iteration = it;
    st.consumed_samples = r.consumed_samples;
    st.consumed_valid_samples = validator ? validator->consumed() : st.consumed_valid_samples;
    save_training_checkpoint(a.save_dir, st, model, adam, scaler, a.keep_last, {&world, dp.rank() == 0, writer},
                             {a.save_optim, a.save_rng});
    if (!writer) return;
    heart.beat(it, r.losses.empty() ? 0 : r.losses.back(), a.save_dir + "/" + iteration_dir_name(it), true);
    if (a.print_log) std::printf("saved checkpoint at iteration %lld to %s\n", (long long)it, a.save_dir.c_str());
    std::fflush(stdout);
    if (a.after_save) a.after_save(it);
  };
  int64_t consecutive_nan = 0, step_bytes = 0;
  bool memory_reported = false;
  const DeviceBuffer stop_mem(model.ctx().backend, 2 * sizeof(double));
  const Tensor stop_flags = stop_mem.tensor({2}, DType::F64);
  ThreadGovernor threads(a.adapt_threads);
  int64_t current_gb = a.rampup.global_batch(r.consumed_samples, a.global_batch);
  for (int64_t it = st.iteration + 1; it <= a.train_iters; ++it) {
    Timer step_timer;
    // Megatron's scheduler counts samples and skipped steps do not advance it.
    if (st.schedule_samples < 0) st.schedule_samples = st.schedule_steps * a.global_batch;
    const double lr = schedule.lr(st.schedule_samples);
    adam.set_weight_decay(st.scheduler->wd(st.schedule_samples));  // Megatron's get_wd, as the lr
    // The global batch (Megatron's update_num_microbatches): a rampup's, from the samples consumed.
    // As in Megatron-core, the run is saved before the first iteration of a new batch size.
    const int64_t gb = a.rampup.global_batch(r.consumed_samples, a.global_batch);
    if (gb != current_gb) {
      save(it - 1);
      current_gb = gb;
    }
    step.set_global_micro(gb / b);
    const int64_t first = r.consumed_samples, sent_before = mpi_bytes_sent();
    auto fill = [&](int64_t g, MicroBatch& mb) {
      mb.fill(data.train_src, first + g * b);
      heart.alive();  // a long step (many micro-batches) is no stall
    };
    const StepOutcome o = step.run(fill, batch, lr,
                                   a.grad_hook ? std::function<void(Tensor&)>([&](Tensor& g) { a.grad_hook(it, g); })
                                               : std::function<void(Tensor&)>());
    step_bytes += mpi_bytes_sent() - sent_before;
    r.consumed_samples += gb;
    r.skipped += o.skipped;
    r.nan += o.nan;
    if (o.stepped) ++st.schedule_steps, st.schedule_samples += gb;
    consecutive_nan = (!std::isfinite(o.loss) || (o.found_inf && !a.fp16)) ? consecutive_nan + 1 : 0;
    r.losses.push_back(std::isfinite(o.loss) ? o.loss : NAN);
    r.iterations = it;
    const double step_s = step_timer.seconds();
    // Megatron logs the optimizer's lr after the scheduler stepped: the next iteration's.
    log.add(o, step_s, schedule.lr(st.schedule_samples), gb);
    if (const std::string note = threads.after_iteration(step_s); !note.empty() && a.print_log)
      log_info("{}{} (iteration {})", world.size() > 1 ? fmt::format("[rank {}] ", world.rank()) : "", note, it);

    const bool nan_stop = a.exit_on_nan > 0 && consecutive_nan >= a.exit_on_nan;
    if (it % a.log_interval == 0 || it == a.train_iters || nan_stop) {
      r.records.push_back(log.flush(it, r.consumed_samples, a.log_params_norm ? step.params_norm() : -1));
      // Megatron's report_memory: once, after the first logged iteration, by data-parallel rank 0
      // of every model-parallel rank (what `plan` predicts per rank).
      if (!memory_reported && a.print_log && dp.rank() == 0)
        std::printf("[Rank %d] (after %lld iterations) memory (MB) | max resident: %.1f\n", world.rank(),
                    (long long)it, double(peak_rss_bytes()) / 1048576.0);
      memory_reported = true;
    }
    heart.beat(it, o.loss, "");  // (before the evaluation, which then shows this iteration)
    if (validator && it % a.eval_interval == 0 && it >= a.start_eval_at_iter) {
      const double loss = validator->evaluate(eval_batch, alive);
      r.valid_losses.push_back({it, loss});
      log.validation(fmt::format("iteration {}", it), it, r.consumed_samples, loss);
    }
    const Stops stops = any_rank_stops(model.ctx(), world, stop_flags,
                                       {a.stop && a.stop->load(), a.exit_duration_s > 0 && seconds_since(started) > a.exit_duration_s});
    // A NaN stop comes first: its state is no checkpoint to continue from (and exit status 1 tells
    // pulse and the scheduler that the run failed), whatever else asked to stop.
    if (nan_stop) {
      r.stopped_on_nan = true;
      heart.finish("failed");
      if (writer) std::fprintf(stderr, "[train] stopping: %lld non-finite iterations in a row (--exit-on-nan %lld)\n",
                   (long long)consecutive_nan, (long long)a.exit_on_nan);
      break;
    }
    // Megatron stops for these at any iteration, the last included, before its end of training.
    const bool signalled = stops.signal, out_of_time = stops.duration;
    const bool exit_now = a.exit_interval > 0 && it % a.exit_interval == 0;
    // The last iteration's checkpoint follows the evaluation at the end of training (below), as
    // Megatron's final save does, unless the run stops here.
    const bool last = it == a.train_iters;
    if ((a.save_interval > 0 && it % a.save_interval == 0 && !last) || signalled || exit_now || out_of_time) save(it);
    if (signalled) {
      r.stopped_by_signal = true;
      if (writer) std::fprintf(stderr, "[train] stop requested (signal): saved at iteration %lld, exiting\n", (long long)it);
      break;
    }
    if (exit_now) {
      r.stopped_by_exit_interval = true;
      if (writer) std::fprintf(stderr, "[train] --exit-interval %lld: saved at iteration %lld, exiting\n",
                   (long long)a.exit_interval, (long long)it);
      break;
    }
    if (out_of_time) {
      r.stopped_by_duration = true;
      if (writer)
        std::fprintf(stderr, "[train] --exit-duration-in-mins %g: saved at iteration %lld after %.1f minutes, exiting\n",
                     a.exit_duration_s / 60.0, (long long)it, seconds_since(started) / 60.0);
      break;
    }
  }
  const bool completed = r.iterations >= a.train_iters && !r.stopped_on_nan && !r.stopped_by_signal &&
                         !r.stopped_by_exit_interval && !r.stopped_by_duration;
  if (completed) {
    // Megatron's end of training: the next validation batches, the final checkpoint, then the test
    // split's eval_iters global batches from its start (a run stopped early exits before this).
    if (validator) {
      r.end_valid_loss = validator->evaluate(eval_batch, alive);
      log.validation("the end of training for val data", r.iterations, r.consumed_samples, r.end_valid_loss, false,
                     true);
    }
    // (A run resumed at its end trains nothing: its checkpoint stays as it is.)
    if (r.iterations > r.start_iteration) save(r.iterations);
    if (data.has_test()) {
      Validator tester(model, data.test_src, dp, eval_micro, 0, pp, a.per_token_loss());
      r.test_loss = tester.evaluate(eval_batch, alive);
      log.validation("the end of training for test data", r.iterations, r.consumed_samples, r.test_loss, true, true);
    }
  }
  if (!r.stopped_on_nan) heart.finish(completed ? "finished" : "stopped");
  r.heartbeat_writes = heart.writes();
  const int64_t steps = r.iterations - r.start_iteration;
  if (writer && world.size() > 1 && steps > 0)
    log_info("[train] communication: rank 0 sent {:.3f} MB per iteration over MPI (training steps, payload)",
             double(step_bytes) / double(steps) / 1e6);
  return r;
}

}  // namespace cs
