#include "train/thread_governor.h"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace cs {

namespace {
constexpr size_t kRecent = 5;        // iterations the median is taken over
constexpr int kMaxBackoff = 8;       // a failed probe doubles the interval, up to 8x
constexpr double kSlowdown = 1.5;    // an iteration this much above the median probes at once
constexpr int kFirstProbe = 3;       // the first probe, right after the warm-up and 3 iterations
}  // namespace

ThreadPolicy::ThreadPolicy(int max_threads, int probe_every)
    : max_(std::max(1, max_threads)), every_(std::max(1, probe_every)), current_(max_), interval_(kFirstProbe) {}

double ThreadPolicy::median() const {
  std::vector<double> v(recent_.begin(), recent_.end());
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

int ThreadPolicy::next(int threads_used, double seconds) {
  if (++seen_ == 1) return current_;  // the first iteration warms caches and allocations up
  if (probe_ != 0 && threads_used == probe_) {  // a probe's result
    const bool wins = seconds < kGain * reference_;
    probe_ = 0;
    if (wins) {
      current_ = threads_used;
      recent_.assign(1, seconds);
      interval_ = every_;
      since_probe_ = 0;
      return current_;
    }
    interval_ = probes_ == 1 ? every_ : std::min(interval_ * 2, kMaxBackoff * every_);
    return current_;
  }
  // An iteration well above the recent median (another process took cores): probe now.
  const bool sudden = recent_.size() >= 3 && seconds > kSlowdown * median();
  recent_.push_back(seconds);
  if (recent_.size() > kRecent) recent_.pop_front();
  if (++since_probe_ < interval_ && !sudden) return current_;
  if (recent_.size() < 3) return current_;
  const int down = current_ / 2, up = std::min(2 * current_, max_);
  const bool can_down = down >= 1 && down != current_, can_up = up != current_;
  // Alternate directions where both exist; otherwise the one there is.
  const bool go_down = can_down && (!can_up || probes_ % 2 == 0);
  if (!go_down && !can_up) return current_;
  probe_ = go_down ? down : up;
  // What the probe must beat: the recent median, or after a sudden slowdown the slow iteration
  // itself (the median still holds the quiet machine's times).
  reference_ = sudden ? seconds : median();
  ++probes_;
  since_probe_ = 0;
  return probe_;
}

namespace {
int present_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}
}  // namespace

ThreadGovernor::ThreadGovernor(bool enabled, int probe_every)
    : active_(enabled && present_threads() > 1), policy_(present_threads(), probe_every), running_(present_threads()) {}

std::string ThreadGovernor::after_iteration(double seconds) {
  if (!active_) return "";
  const int kept = policy_.threads();
  const int n = policy_.next(running_, seconds);
  if (n != running_) {
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    running_ = n;
  }
  if (policy_.threads() == kept) return "";
  return fmt::format("[threads] {} -> {} OpenMP threads: iterations ran faster with {} (the cores are {})", kept, policy_.threads(), policy_.threads(), policy_.threads() < kept ? "shared" : "free again");
}

}  // namespace cs
