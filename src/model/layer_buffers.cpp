// Sizes and carving of the per-layer saved activations and the shared backward scratch.
// Every buffer is sized for n = B*T rows of the planned maximum; views use the current B, T.
#include "model/layer.h"

namespace cs {

namespace {
// Hands out consecutive float ranges of a block, 16-float (64-byte) aligned.
struct Carver {
  float* p;
  int64_t used = 0;
  float* take(int64_t n) {
    float* r = p ? p + used : nullptr;
    used += (n + 15) / 16 * 16;
    return r;
  }
};

template <typename F>
int64_t saved_layout(const Dims& d, F&& take, LayerSaved* s) {
  const int64_t n = d.n(), bh = d.b * d.h;
  LayerSaved v{};
  v.ln1 = take(n * d.d); v.rstd1 = take(n); v.qkv = take(n * 3 * d.d);
  v.q = take(n * d.d); v.k = take(n * d.d); v.v = take(n * d.d);
  v.att = take(n * d.d); v.lse = take(bh * d.t); v.attm = take(n * d.d); v.h = take(n * d.d);
  v.ln2 = take(n * d.d); v.rstd2 = take(n); v.gu = take(n * 2 * d.f); v.act = take(n * d.f);
  if (s) *s = v;
  return 0;
}
}  // namespace

int64_t LayerSaved::floats(const Dims& d) {
  Carver c{nullptr};
  saved_layout(d, [&](int64_t n) { return c.take(n); }, nullptr);
  return c.used;
}

LayerSaved LayerSaved::carve(float* p, const Dims& d) {
  Carver c{p};
  LayerSaved s{};
  saved_layout(d, [&](int64_t n) { return c.take(n); }, &s);
  return s;
}

namespace {
template <typename F>
LayerScratch scratch_layout(const Dims& d, F&& take) {
  const int64_t n = d.n();
  LayerScratch k{};
  k.dln = take(n * d.d); k.dqkv = take(n * 3 * d.d);
  k.dq = take(n * d.d); k.dk = take(n * d.d); k.dv = take(n * d.d);
  k.datt = take(n * d.d); k.dattm = take(n * d.d); k.dgu = take(n * 2 * d.f); k.dact = take(n * d.f);
  return k;
}
}  // namespace

int64_t LayerScratch::floats(const Dims& d) {
  Carver c{nullptr};
  scratch_layout(d, [&](int64_t n) { return c.take(n); });
  return c.used;
}

LayerScratch LayerScratch::carve(float* p, const Dims& d) {
  Carver c{p};
  return scratch_layout(d, [&](int64_t n) { return c.take(n); });
}

}  // namespace cs
