// Instruments for the benchmarks (train_bench on the CPU, gpu_bench on any device): a backend that
// counts its allocations, and a training step's time by op family: an op table whose every entry
// times the base table's op, and a context that routes a model's calls through it while using
// another context's stream, handle and workspace. On a
// device backend each timed op synchronises the context before and after, so its time is its own
// (queued copies and zeroing land in "other"); the table times nothing until enabled, so the
// same context serves the unprofiled steps at full speed.
#pragma once
#include <array>
#include <cstdio>
#include <memory>
#include <unordered_map>
#include <utility>

#include "backend/backend.h"

namespace cs::bench {

enum Family { kGemm, kAttention, kElementwise, kLoss, kOptimizer, kFamilies };

// A backend with its allocations counted (peak bytes held), forwarding everything else. Its
// contexts are its own (their `backend` is this one, so a model allocating through its context is
// counted), running on a context of the wrapped backend that they own.
class CountingBackend final : public Backend {
 public:
  explicit CountingBackend(std::unique_ptr<Backend> b) : b_(std::move(b)) {}
  const char* name() const override { return b_->name(); }
  Device device() const override { return b_->device(); }
  bool is_host() const override { return b_->is_host(); }
  const Ops& ops() const override { return b_->ops(); }
  std::unique_ptr<Ctx> make_context() override;
  void* allocate(size_t bytes) override;
  void deallocate(void* p) noexcept override;
  void upload(Ctx& c, const void* h, const Tensor& t) override { b_->upload(c, h, t); }
  void download(Ctx& c, const Tensor& t, void* h) override { b_->download(c, t, h); }
  void copy(Ctx& c, const Tensor& s, const Tensor& d) override { b_->copy(c, s, d); }
  void zero(Ctx& c, const Tensor& t) override { b_->zero(c, t); }
  void synchronize(Ctx& c) override { b_->synchronize(c); }
  size_t peak() const { return peak_; }
  size_t held() const { return held_; }

 private:
  std::unique_ptr<Backend> b_;
  std::unordered_map<void*, size_t> sizes_;  // the live allocations
  size_t held_ = 0, peak_ = 0;
};

// Per-family seconds accumulated by the profiled table while enabled.
struct OpProfile {
  std::array<double, kFamilies> seconds{};
  bool enabled = false;
};

// The process's profile (the op table's entries are plain functions, so they reach it here).
OpProfile& op_profile();

// `base` with every op a training step calls timed into op_profile() by family. The table keeps
// a pointer to `base`, which must outlive it.
Ops profiled_ops(const Ops& base);

// A context of `backend` (inner's own, or one that forwards to it, such as an allocation counter)
// running `ops` on `inner`'s stream, handle and workspace; `inner` owns them and must outlive it.
std::unique_ptr<Ctx> profiled_context(Backend& backend, Ctx& inner, const Ops& ops);

// The family table: each family's share of `step_seconds` (the steps' total wall time) and its
// ms per step over `steps`, then "other" (the rest of the steps' time).
void print_profile(std::FILE* out, int steps, double step_seconds);
// The same as one JSON line: {"bench": "profile", "label": ..., "<family>_ms": ...}.
void print_profile_json(std::FILE* out, const char* label, int steps, double step_seconds);

}  // namespace cs::bench
