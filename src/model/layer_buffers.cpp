// Carving of the per-layer saved activations and the shared backward scratch. Every buffer is
// carved for the planned maximum rows; at() views a prefix at the current B, T.
#include <initializer_list>

#include "model/layer.h"

namespace cs {

Tensor prefix(const Tensor& t, Shape s) {
  CS_CHECK(s.numel() <= t.numel()) << "view " << s.str() << " of planned " << t.shape.str();
  return Tensor(t.data, s, t.dtype, t.device);
}

namespace {
// One description of each set's tensors, used both to carve (planned dims) and to view (current).
// What a tensor holds, for its dtype: statistics (always f32), an activation, a GEMM's saved input
// or output (Precision::gemm_io).
enum Kind { kStat, kAct, kGemmIo };

template <typename F>
LayerSaved saved_shapes(const Dims& d, F&& take) {
  const int64_t n = d.n(), ns = d.ns(), a = d.w.attention(), D = d.w.d, f = d.w.ffn;
  const Shape heads{d.b, d.w.heads, d.t, d.w.head_dim};
  LayerSaved v;
  // Norm statistics and the log-sum-exp stay f32 whatever the activations' dtype. The residual
  // stream's tensors (h, the norms' statistics) have this rank's Ns rows; the norms' outputs, the
  // column-parallel GEMMs' input, all N.
  v.ln1 = take(Shape{n, D}, kGemmIo); v.rstd1 = take(Shape{ns}, kStat); v.qkv = take(Shape{n, 3 * a}, kGemmIo);
  // q, k, v and the attention output are its tile GEMMs' operands (bf16 attention under --bf16).
  v.q = take(heads, kGemmIo); v.k = take(heads, kGemmIo); v.v = take(heads, kGemmIo);
  v.att = take(heads, kGemmIo); v.lse = take(Shape{d.b, d.w.heads, d.t}, kStat); v.attm = take(Shape{n, a}, kGemmIo);
  v.h = take(Shape{ns, D}, kAct); v.ln2 = take(Shape{n, D}, kGemmIo); v.rstd2 = take(Shape{ns}, kStat);
  v.gu = take(Shape{n, 2 * f}, kGemmIo); v.act = take(Shape{n, f}, kGemmIo);
  return v;
}

template <typename F>
LayerScratch scratch_shapes(const Dims& d, F&& take) {
  const int64_t n = d.n(), a = d.w.attention(), f = d.w.ffn;
  const Shape heads{d.b, d.w.heads, d.t, d.w.head_dim};
  LayerScratch k;
  // dqkv and dgu only feed their GEMMs (weight gradient and input gradient), the attention
  // output's gradient the attention's tile GEMMs: GEMM inputs. dq, dk, dv are accumulated over
  // key or query blocks: f32.
  k.dln = take(Shape{n, d.w.d}, kAct); k.dqkv = take(Shape{n, 3 * a}, kGemmIo);
  k.dq = take(heads, kAct); k.dk = take(heads, kAct); k.dv = take(heads, kAct);
  k.datt = take(heads, kGemmIo); k.dattm = take(Shape{n, a}, kAct); k.dgu = take(Shape{n, 2 * f}, kGemmIo);
  k.dact = take(Shape{n, f}, kAct);
  return k;
}

// Views the planned tensors of a set in the order the carve took them.
struct Viewer {
  std::initializer_list<const Tensor*> planned;
  size_t i = 0;
  Tensor operator()(Shape s, Kind) { return prefix(*planned.begin()[i++], s); }
};
}  // namespace

LayerSaved LayerSaved::carve(TensorCarver& c, const Dims& d, DType act_dtype, DType gemm_dtype) {
  return saved_shapes(d, [&](Shape s, Kind k) {
    return c.take(s, k == kStat ? DType::F32 : k == kGemmIo ? gemm_dtype : act_dtype);
  });
}

LayerSaved LayerSaved::at(const Dims& d) const {
  return saved_shapes(d, Viewer{{&ln1, &rstd1, &qkv, &q, &k, &v, &att, &lse, &attm, &h, &ln2, &rstd2, &gu, &act}});
}

LayerScratch LayerScratch::carve(TensorCarver& c, const Dims& d, DType act_dtype, DType gemm_dtype) {
  return scratch_shapes(d, [&](Shape s, Kind k) {
    return c.take(s, k == kStat ? DType::F32 : k == kGemmIo ? gemm_dtype : act_dtype);
  });
}

LayerScratch LayerScratch::at(const Dims& d) const {
  return scratch_shapes(d, Viewer{{&dln, &dqkv, &dq, &dk, &dv, &datt, &dattm, &dgu, &dact}});
}

}  // namespace cs
