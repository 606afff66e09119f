// The OpenMP thread count of a training run, adapted to the cores it actually gets
// (--adaptive-threads). Every op is a parallel region ending at a barrier: when another process
// takes one of the cores, the thread it displaces stalls all the others at every barrier, and a
// 2-thread iteration measured here took several times as long as a 1-thread one
// (docs/performance.md, "Threads"). No wait policy fixes that (passive waiting recovered a
// quarter); fewer threads do. So the trainer times its iterations and, after its first few and
// then every `probe_every` iterations, runs one at a neighbouring count (half, or double up to
// the start count, in turn); the probe's count is kept when its iteration was clearly faster (by
// kGain) than the median of the recent iterations at the current one. A probe that loses doubles the interval (up to 8x:
// about 0.3 % of the time spent probing on a quiet machine); an iteration 1.5x slower than the
// median (another process arrived) probes at once.
// Opt-in, because the results' last bits depend on the thread count (OpenBLAS cuts a long
// reduction into per-thread blocks; our own kernels do not): a run whose counts followed the
// machine's load is not bit-identical to another run of the same configuration.
#pragma once
#include <cstdint>
#include <deque>
#include <string>

namespace cs {

// The decision, without side effects (tests drive it with made-up timings).
class ThreadPolicy {
 public:
  static constexpr double kGain = 0.85;  // a probe must take below 85 % of the median to win
  ThreadPolicy(int max_threads, int probe_every);
  int threads() const { return current_; }
  // The count to run the next iteration with, after one that took `seconds` at threads_used.
  int next(int threads_used, double seconds);

 private:
  double median() const;
  int max_, every_, current_, interval_, probe_ = 0;
  int64_t seen_ = 0, since_probe_ = 0, probes_ = 0;
  double reference_ = 0;  // the time the pending probe must beat (by kGain)
  std::deque<double> recent_;  // the last iterations at current_
};

// The policy applied to this process's OpenMP thread count. Inactive (never changes anything)
// unless asked for, or when the count is 1.
class ThreadGovernor {
 public:
  // Starts from the process's present OpenMP thread count (cpu::apply_threads set it).
  explicit ThreadGovernor(bool enabled, int probe_every = 40);
  // After each iteration: sets the count for the next one. Returns a line for the log when the
  // kept count changed ("" otherwise).
  std::string after_iteration(double seconds);

 private:
  bool active_;
  ThreadPolicy policy_;
  int running_;  // the count the last iteration ran with
};

}  // namespace cs
