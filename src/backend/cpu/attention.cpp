// Causal attention, flash-style (attention_flash.h has the loops and the masks). This file: the
// shared mask helpers, the f32 tile math (the block products Q K^T, P V, and in the backward
// dP = dO V^T, dV += P^T dO, dQ += dS K, dK += dS^T Q are GEMMs through cblas_sgemm on the
// calling thread: inside the OpenMP region OpenBLAS runs single-threaded), and the ops, which
// pick the f32 or the bf16 math (attention_bf16.cpp) by the dtype of q, k, v.
// q, k, v, o, dout: (B, H, T, Hd), all f32 or all bf16; lse: (B, H, T) f32; dq, dk, dv: f32.
#include <cblas.h>

#include "backend/cpu/attention_bf16.h"
#include "backend/cpu/attention_flash.h"
#include "backend/cpu/ops.h"
#include "backend/op_check.h"

namespace cs::cpu {

namespace flash {

const int32_t* segment_starts(const Tensor& segments, int64_t b, int64_t t_len) {
  thread_local std::vector<int32_t> starts;
  starts.assign(size_t(b * t_len), 0);
  if (segments.numel() == 0) return starts.data();
  const int32_t* seg = segments.i32();
  for (int64_t bi = 0; bi < b; ++bi)
    for (int64_t t = 1; t < t_len; ++t) {
      const int64_t i = bi * t_len + t;
      starts[size_t(i)] = seg[i] == seg[i - 1] ? starts[size_t(i - 1)] : int32_t(t);
    }
  return starts.data();
}

}  // namespace flash

namespace {
using flash::kBk;

// c (m x n, row stride ldc) = alpha * op(a) op(b) + beta * c, row-major, on this thread.
inline void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                 const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m), int(n), int(k),
              alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
}

// The f32 tile math: the operands are the tensors' own rows.
struct F32Math {
  const float *q, *k, *v, *dout;
  int64_t t_len, hd;
  struct Local {
    const F32Math& m;
    const float *qh = nullptr, *kh = nullptr, *vh = nullptr, *doh = nullptr;
    explicit Local(const F32Math& math) : m(math) {}
    void head(int64_t bh, bool) {
      const int64_t off = bh * m.t_len * m.hd;
      qh = m.q + off, kh = m.k + off, vh = m.v + off, doh = m.dout ? m.dout + off : nullptr;
    }
    void scores(int64_t i0, int64_t rows, int64_t j0, int64_t cols, float* s) const {
      gemm(false, true, rows, cols, m.hd, 1.f, qh + i0 * m.hd, m.hd, kh + j0 * m.hd, m.hd, 0.f, s, kBk);
    }
    const float* softmax(float* s, const flash::TileArgs& t, float* mx, float* l, float* corr) const {
      flash::softmax_tile(s, t, mx, l, corr, s);
      return s;
    }
    void add_pv(const float* p, int64_t, int64_t rows, int64_t j0, int64_t cols, float* acc) const {
      gemm(false, false, rows, m.hd, cols, 1.f, p, kBk, vh + j0 * m.hd, m.hd, 1.f, acc, m.hd);
    }
    void key_block(int64_t j0, int64_t cols, float* dk, float* dv) const {  // the block's rows accumulate
      std::fill(dk + j0 * m.hd, dk + (j0 + cols) * m.hd, 0.f);
      std::fill(dv + j0 * m.hd, dv + (j0 + cols) * m.hd, 0.f);
    }
    void dp(int64_t i0, int64_t rows, int64_t j0, int64_t cols, float* d) const {
      gemm(false, true, rows, cols, m.hd, 1.f, doh + i0 * m.hd, m.hd, vh + j0 * m.hd, m.hd, 0.f, d, kBk);
    }
    void grads(float* p, float* ds, const flash::TileArgs& t, const float* lse, const float* dvec, float* dq,
               float* dk, float* dv) const {
      flash::p_ds_tile(p, ds, t, lse, dvec);  // in place: P over the scores, dS over dP
      const int64_t hd = m.hd, i0 = t.i0, j0 = t.j0, rows = t.rows, cols = t.cols;
      gemm(true, false, cols, hd, rows, 1.f, p, kBk, doh + i0 * hd, hd, 1.f, dv + j0 * hd, hd);   // dV += P^T dO
      gemm(false, false, rows, hd, cols, 1.f, ds, kBk, kh + j0 * hd, hd, 1.f, dq + i0 * hd, hd);  // dQ += dS K
      gemm(true, false, cols, hd, rows, 1.f, ds, kBk, qh + i0 * hd, hd, 1.f, dk + j0 * hd, hd);   // dK += dS^T Q
    }
    void end_key_block(int64_t, int64_t, float*, float*) const {}
  };
};

flash::Dims check_dims(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& slopes) {
  CS_CHECK(q.ndim() == 4 && q.shape == k.shape && q.shape == v.shape)
      << q.shape.str() << k.shape.str() << v.shape.str();
  flash::Dims d{q.size(0), q.size(1), q.size(2), q.size(3)};
  CS_CHECK(slopes.numel() == 0 || slopes.numel() == d.h) << slopes.shape.str();
  return d;
}

// The dtype and device checks the forward and the backward share: q, k, v and the tensors in
// same_as_q share q's dtype (f32 or bf16).
void check_attention_args(const char* op, const Tensor& q, const Tensor& k, const Tensor& v,
                          const Tensor& slopes, const Tensor& segments,
                          std::initializer_list<NamedArg> same_as_q) {
  check_f32_or_bf16(op, "q", q, Device::CPU);
  check_arg(op, "k", k, q.dtype, Device::CPU);
  check_arg(op, "v", v, q.dtype, Device::CPU);
  for (const NamedArg& a : same_as_q) check_arg(op, a.name, *a.tensor, q.dtype, Device::CPU);
  if (slopes.numel()) check_f32(op, "slopes", slopes, Device::CPU);
  if (segments.numel()) {
    check_arg(op, "segments", segments, DType::I32, Device::CPU);
    CS_CHECK(segments.numel() == q.size(0) * q.size(2)) << segments.shape.str() << q.shape.str();
  }
}

const float* slopes_of(const Tensor& slopes) { return slopes.numel() ? slopes.f32() : nullptr; }
}  // namespace

void attention_forward(Ctx&, const Tensor& q, const Tensor& k, const Tensor& v,
                       const Tensor& slopes, const Tensor& segments, const Tensor& o, const Tensor& lse) {
  check_attention_args("attention_forward", q, k, v, slopes, segments, {{"o", &o}});
  check_f32("attention_forward", "lse", lse, Device::CPU);
  const flash::Dims dm = check_dims(q, k, v, slopes);
  CS_CHECK(o.shape == q.shape && lse.numel() == dm.b * dm.h * dm.t);
  const int32_t* starts = flash::segment_starts(segments, dm.b, dm.t);
  if (q.dtype == DType::BF16) {
    attention_forward_bf16(dm, data_as<Bf16>(q), data_as<Bf16>(k), data_as<Bf16>(v), slopes_of(slopes), starts,
                           data_as<Bf16>(o), lse.f32());
    return;
  }
  const F32Math math{q.f32(), k.f32(), v.f32(), nullptr, dm.t, dm.hd};
  flash::forward(dm, math, slopes_of(slopes), starts, o.f32(), lse.f32());
}

void attention_backward(Ctx&, const Tensor& q, const Tensor& k, const Tensor& v,
                        const Tensor& slopes, const Tensor& segments, const Tensor& o, const Tensor& lse,
                        const Tensor& dout, const Tensor& dq, const Tensor& dk, const Tensor& dv) {
  check_attention_args("attention_backward", q, k, v, slopes, segments, {{"o", &o}, {"dout", &dout}});
  check_f32_args("attention_backward", Device::CPU, {{"lse", &lse}, {"dq", &dq}, {"dk", &dk}, {"dv", &dv}});
  const flash::Dims dm = check_dims(q, k, v, slopes);
  CS_CHECK(o.shape == q.shape && dout.shape == q.shape && dq.shape == q.shape && dk.shape == q.shape &&
           dv.shape == q.shape && lse.numel() == dm.b * dm.h * dm.t);
  const int32_t* starts = flash::segment_starts(segments, dm.b, dm.t);
  if (q.dtype == DType::BF16) {
    attention_backward_bf16(dm, data_as<Bf16>(q), data_as<Bf16>(k), data_as<Bf16>(v), slopes_of(slopes), starts,
                            data_as<Bf16>(o), lse.f32(), data_as<Bf16>(dout), dq.f32(), dk.f32(), dv.f32());
    return;
  }
  const F32Math math{q.f32(), k.f32(), v.f32(), dout.f32(), dm.t, dm.hd};
  flash::backward(dm, math, slopes_of(slopes), starts, o.f32(), lse.f32(), dout.f32(), dq.f32(), dk.f32(), dv.f32());
}

}  // namespace cs::cpu
