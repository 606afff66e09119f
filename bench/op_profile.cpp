// The counting backend and the self-timing op table of op_profile.h. Backend copies and zeros are
// not ops (they are Backend members) and count as "other".
#include "op_profile.h"

#include <algorithm>
#include <utility>

#include "core/timer.h"

namespace cs::bench {
namespace {

const char* kNames[] = {"GEMM", "attention", "elementwise (norms, rope, swiglu, embedding, casts)",
                        "cross entropy", "optimizer (AdamW, norm, clip)"};
const char* kKeys[] = {"gemm", "attention", "elementwise", "cross_entropy", "optimizer"};
const Ops* g_base = nullptr;

// Runs one op of the base table and, while profiling, adds its time to family F. A device
// context is synchronised first (work queued before the op is not the op's) and after.
template <Family F, typename Fn, typename... A>
void timed(Fn fn, Ctx& c, A&&... a) {
  OpProfile& p = op_profile();
  if (!p.enabled) return fn(c, std::forward<A>(a)...);
  const bool device = !c.backend.is_host();
  if (device) c.backend.synchronize(c);
  Timer t;
  fn(c, std::forward<A>(a)...);
  if (device) c.backend.synchronize(c);
  p.seconds[F] += t.seconds();
}

// A context that runs on another's stream, handle and workspace (and owns it, when given).
struct BorrowedCtx final : Ctx {
  std::unique_ptr<Ctx> owned;
  BorrowedCtx(Backend& backend, Ctx& inner, const Ops& ops, std::unique_ptr<Ctx> own = nullptr)
      : Ctx(backend, ops), owned(std::move(own)) {
    stream = inner.stream;
    blas = inner.blas;
    workspace = inner.workspace;
  }
};

}  // namespace

std::unique_ptr<Ctx> CountingBackend::make_context() {
  auto inner = b_->make_context();
  Ctx& in = *inner;
  return std::make_unique<BorrowedCtx>(*this, in, b_->ops(), std::move(inner));
}

void* CountingBackend::allocate(size_t bytes) {
  void* p = b_->allocate(bytes);
  if (p) sizes_[p] = bytes;
  held_ += bytes;
  peak_ = std::max(peak_, held_);
  return p;
}

void CountingBackend::deallocate(void* p) noexcept {
  if (auto it = sizes_.find(p); it != sizes_.end()) {
    held_ -= it->second;
    sizes_.erase(it);
  }
  b_->deallocate(p);
}

OpProfile& op_profile() {
  static OpProfile p;
  return p;
}

std::unique_ptr<Ctx> profiled_context(Backend& backend, Ctx& inner, const Ops& ops) {
  return std::make_unique<BorrowedCtx>(backend, inner, ops);
}

Ops profiled_ops(const Ops& base) {
  g_base = &base;
  Ops ops = base;
  ops.name = "profiled";
  ops.matmul = [](Ctx& c, const Tensor& a, bool ta, const Tensor& b, bool tb, const Tensor& o, float al, float be) {
    timed<kGemm>(g_base->matmul, c, a, ta, b, tb, o, al, be);
  };
  ops.attention_forward = [](Ctx& c, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& s,
                             const Tensor& seg, const Tensor& o, const Tensor& l) {
    timed<kAttention>(g_base->attention_forward, c, q, k, v, s, seg, o, l);
  };
  ops.attention_backward = [](Ctx& c, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& s,
                              const Tensor& seg, const Tensor& o, const Tensor& l, const Tensor& d,
                              const Tensor& dq, const Tensor& dk, const Tensor& dv) {
    timed<kAttention>(g_base->attention_backward, c, q, k, v, s, seg, o, l, d, dq, dk, dv);
  };
  ops.embedding_forward = [](Ctx& c, const Tensor& t, const Tensor& w, int64_t off, const Tensor& o) {
    timed<kElementwise>(g_base->embedding_forward, c, t, w, off, o);
  };
  ops.embedding_backward = [](Ctx& c, const Tensor& t, int64_t off, const Tensor& d, const Tensor& w) {
    timed<kElementwise>(g_base->embedding_backward, c, t, off, d, w);
  };
  ops.rmsnorm_forward = [](Ctx& c, const Tensor& x, const Tensor& w, float e, const Tensor& y, const Tensor& r) {
    timed<kElementwise>(g_base->rmsnorm_forward, c, x, w, e, y, r);
  };
  ops.rmsnorm_backward = [](Ctx& c, const Tensor& x, const Tensor& w, const Tensor& r, const Tensor& dy,
                            const Tensor& dx, const Tensor& dw, bool acc) {
    timed<kElementwise>(g_base->rmsnorm_backward, c, x, w, r, dy, dx, dw, acc);
  };
  ops.rope_apply = [](Ctx& c, const Tensor& x, float b, int64_t p, const Tensor& pos, bool inv) {
    timed<kElementwise>(g_base->rope_apply, c, x, b, p, pos, inv);
  };
  ops.split_heads = [](Ctx& c, const Tensor& x, int64_t col, const Tensor& o) {
    timed<kElementwise>(g_base->split_heads, c, x, col, o);
  };
  ops.merge_heads = [](Ctx& c, const Tensor& i, const Tensor& x, int64_t col) {
    timed<kElementwise>(g_base->merge_heads, c, i, x, col);
  };
  ops.swiglu_forward = [](Ctx& c, const Tensor& g, const Tensor& o) { timed<kElementwise>(g_base->swiglu_forward, c, g, o); };
  ops.swiglu_backward = [](Ctx& c, const Tensor& g, const Tensor& d, const Tensor& o) {
    timed<kElementwise>(g_base->swiglu_backward, c, g, d, o);
  };
  ops.add_inplace = [](Ctx& c, const Tensor& y, const Tensor& x) { timed<kElementwise>(g_base->add_inplace, c, y, x); };
  ops.cast = [](Ctx& c, const Tensor& x, const Tensor& y) { timed<kElementwise>(g_base->cast, c, x, y); };
  ops.cross_entropy_forward = [](Ctx& c, const Tensor& z, const Tensor& t, int64_t off, const Tensor& s,
                                  const Tensor& tl) { timed<kLoss>(g_base->cross_entropy_forward, c, z, t, off, s, tl); };
  ops.cross_entropy_combine = [](Ctx& c, const Tensor& p, const Tensor& tl, const Tensor& t, const Tensor& l,
                                  const Tensor& s) { timed<kLoss>(g_base->cross_entropy_combine, c, p, tl, t, l, s); };
  ops.cross_entropy_backward = [](Ctx& c, const Tensor& z, const Tensor& s, const Tensor& t, int64_t off, float sc,
                                   const Tensor& d) { timed<kLoss>(g_base->cross_entropy_backward, c, z, s, t, off, sc, d); };
  ops.sum = [](Ctx& c, const Tensor& x, const Tensor& o) { timed<kOptimizer>(g_base->sum, c, x, o); };
  ops.sum_squares = [](Ctx& c, const Tensor& x, const Tensor& o) { timed<kOptimizer>(g_base->sum_squares, c, x, o); };
  ops.count_zeros = [](Ctx& c, const Tensor& x, const Tensor& o) { timed<kOptimizer>(g_base->count_zeros, c, x, o); };
  ops.scale = [](Ctx& c, const Tensor& x, float a) { timed<kOptimizer>(g_base->scale, c, x, a); };
  ops.adamw_update = [](Ctx& c, const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, double lr,
                        double b1, double b2, double e, double wd, int64_t s, float gs, const Tensor& h) {
    timed<kOptimizer>(g_base->adamw_update, c, p, g, m, v, lr, b1, b2, e, wd, s, gs, h);
  };
  return ops;
}

void print_profile(std::FILE* out, int steps, double step_seconds) {
  const OpProfile& p = op_profile();
  double fam_total = 0;
  std::fprintf(out, "where a step's time goes (%d steps):\n", steps);
  for (int f = 0; f < kFamilies; ++f) {
    fam_total += p.seconds[f];
    std::fprintf(out, "  %-55s %6.1f%%  %8.1f ms/step\n", kNames[f], 100 * p.seconds[f] / step_seconds,
                 1e3 * p.seconds[f] / steps);
  }
  std::fprintf(out, "  %-55s %6.1f%%  %8.1f ms/step\n", "other (data, loop, logging, copies, zeros)",
               100 * (step_seconds - fam_total) / step_seconds, 1e3 * (step_seconds - fam_total) / steps);
}

void print_profile_json(std::FILE* out, const char* label, int steps, double step_seconds) {
  const OpProfile& p = op_profile();
  double fam_total = 0;
  std::fprintf(out, "{\"bench\": \"profile\", \"label\": \"%s\", \"step_ms\": %.2f", label, 1e3 * step_seconds / steps);
  for (int f = 0; f < kFamilies; ++f) {
    fam_total += p.seconds[f];
    std::fprintf(out, ", \"%s_ms\": %.2f", kKeys[f], 1e3 * p.seconds[f] / steps);
  }
  std::fprintf(out, ", \"other_ms\": %.2f}\n", 1e3 * (step_seconds - fam_total) / steps);
}

}  // namespace cs::bench
