// Wall-clock timing for throughput figures (steady clock; never used for correctness).
#pragma once
#include <chrono>

namespace cs {

class Timer {
 public:
  Timer() : start_(std::chrono::steady_clock::now()) {}
  void reset() { start_ = std::chrono::steady_clock::now(); }
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::chrono::steady_clock::time_point start_;
};

// Peak resident set size of this process in bytes (getrusage ru_maxrss).
long peak_rss_bytes();

}  // namespace cs
