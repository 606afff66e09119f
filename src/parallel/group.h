// Group: the collective-communication interface every parallel piece talks through (TP, PP, DP
// groups are all Groups). Implementations: SingleGroup here (every collective a no-op), MPI and
// NCCL later. Passed explicitly: there are no global process groups.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

namespace cs {

class Group {
 public:
  virtual ~Group() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // A name for error messages ("tp", "dp", "world", ...).
  virtual std::string name() const = 0;
  // In place: data[i] = sum over ranks of data[i].
  virtual void all_reduce_sum(float* data, int64_t count) = 0;
  // The same in double (norms, loss sums: reductions whose precision matters).
  virtual void all_reduce_sum(double* data, int64_t count) = 0;
  // out (size * count) = concatenation of every rank's in (count), in rank order.
  virtual void all_gather(const float* in, float* out, int64_t count) = 0;
  // out (count) = this rank's count-sized chunk of the sum of every rank's in (size * count).
  virtual void reduce_scatter_sum(const float* in, float* out, int64_t count) = 0;
  // data (count) = root's data.
  virtual void broadcast(float* data, int64_t count, int root) = 0;
  virtual void barrier() = 0;
};

// The group of one process: collectives copy or do nothing.
class SingleGroup final : public Group {
 public:
  explicit SingleGroup(std::string name = "world") : name_(std::move(name)) {}
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string name() const override { return name_; }
  void all_reduce_sum(float*, int64_t) override {}
  void all_reduce_sum(double*, int64_t) override {}
  void all_gather(const float* in, float* out, int64_t count) override;
  void reduce_scatter_sum(const float* in, float* out, int64_t count) override;
  void broadcast(float*, int64_t, int) override {}
  void barrier() override {}

 private:
  std::string name_;
};

}  // namespace cs
