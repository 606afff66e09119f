// The op table: the only math API that model/ and parallel/ call. Each entry is one op's forward
// or backward; the CPU table is filled by backend/cpu, the CUDA table by backend/cuda. Ops take
// Tensor views (fp32 unless stated), check shapes, and never allocate per call beyond reusable
// per-thread scratch.
// Legend: B batch, T sequence, D hidden, H heads, Hd head dim, F ffn, V vocab, N = B*T rows.
// Gradient convention: parameter gradients accumulate (+=); activation gradients overwrite,
// except where stated (rmsnorm_backward's dx can accumulate: that is where the residual joins).
#pragma once
#include "core/tensor.h"

namespace cs {

struct Ops {
  const char* name;

  // c = alpha * op(a) @ op(b) + beta * c; a, b, c 2-D; op(x) = x^T when the flag is set.
  void (*matmul)(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, Tensor& c,
                 float alpha, float beta);

  // out[n, :] = weight[tokens[n], :]. tokens: (N) i32; weight: (V, D); out: (N, D).
  void (*embedding_forward)(const Tensor& tokens, const Tensor& weight, Tensor& out);
  // dweight[tokens[n], :] += dout[n, :].
  void (*embedding_backward)(const Tensor& tokens, const Tensor& dout, Tensor& dweight);

  // y = x * rstd * w, rstd = 1/sqrt(mean(x^2) + eps). x, y: (N, D); w: (D); rstd: (N) saved.
  void (*rmsnorm_forward)(const Tensor& x, const Tensor& w, float eps, Tensor& y, Tensor& rstd);
  // dx (= or += when accumulate), dw +=.
  void (*rmsnorm_backward)(const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dy,
                           Tensor& dx, Tensor& dw, bool accumulate_dx);

  // Rotary embedding, rotate-half form, in place on x: (B, H, T, Hd); position of row t is
  // pos0 + t. inverse=true rotates by -angle: that is the backward (the rotation is orthogonal).
  void (*rope_apply)(Tensor& x, float base, int64_t pos0, bool inverse);

  // out (B, H, T, Hd) = columns [col0, col0 + H*Hd) of x (B, T, C), heads split.
  void (*split_heads)(const Tensor& x, int64_t col0, Tensor& out);
  // Columns [col0, col0 + H*Hd) of x (B, T, C) = in (B, H, T, Hd), heads merged (overwrite).
  void (*merge_heads)(const Tensor& in, Tensor& x, int64_t col0);

  // Causal softmax attention, tiled with an online softmax: no (T, T) matrix is formed.
  // q, k, v, o: (B, H, T, Hd); lse: (B, H, T) saved; slopes: (H) ALiBi slopes or an empty
  // tensor (no bias). score = q.k / sqrt(Hd) + slope * (j - i) for j <= i.
  void (*attention_forward)(const Tensor& q, const Tensor& k, const Tensor& v,
                            const Tensor& slopes, Tensor& o, Tensor& lse);
  // dq, dk, dv overwrite.
  void (*attention_backward)(const Tensor& q, const Tensor& k, const Tensor& v,
                             const Tensor& slopes, const Tensor& o, const Tensor& lse,
                             const Tensor& dout, Tensor& dq, Tensor& dk, Tensor& dv);

  // Inference attention over a KV cache: q (B, H, Tq, Hd) are the positions [tk - Tq, tk);
  // k_cache, v_cache (B, H, Tcap, Hd) hold positions [0, tk) (tk <= Tcap); o (B, H, Tq, Hd).
  // Causal with the same scores as attention_forward.
  void (*attention_decode)(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                           int64_t tk, const Tensor& slopes, Tensor& o);
  // Writes x (B, H, T, Hd) into cache (B, H, Tcap, Hd) at positions [pos, pos + T).
  void (*kv_append)(const Tensor& x, Tensor& cache, int64_t pos);

  // gu: (N, 2F) with gate in columns [0, F) and up in [F, 2F); out = silu(gate) * up: (N, F).
  void (*swiglu_forward)(const Tensor& gu, Tensor& out);
  // dgu: (N, 2F) overwrite.
  void (*swiglu_backward)(const Tensor& gu, const Tensor& dout, Tensor& dgu);

  // losses[n] = logsumexp(logits[n]) - logits[n, targets[n]]; lse saved; target -1 = ignored
  // (loss 0). logits: (N, V); targets: (N) i32; losses, lse: (N).
  void (*cross_entropy_forward)(const Tensor& logits, const Tensor& targets, Tensor& losses,
                                Tensor& lse);
  // dlogits = scale * (softmax(logits) - onehot(target)); ignored rows 0. dlogits may alias logits.
  void (*cross_entropy_backward)(const Tensor& logits, const Tensor& lse, const Tensor& targets,
                                 float scale, Tensor& dlogits);

  // y += x (same shape).
  void (*add_inplace)(Tensor& y, const Tensor& x);
  // y = x.
  void (*copy)(const Tensor& x, Tensor& y);
  // x = 0.
  void (*zero)(Tensor& x);
  // Sum of all elements, accumulated in double.
  double (*sum)(const Tensor& x);
  // Sum of squares of all elements, accumulated in double (gradient norms; inf/nan propagate).
  double (*sum_squares)(const Tensor& x);
  // x *= alpha.
  void (*scale)(Tensor& x, float alpha);

  // One AdamW step (Loshchilov & Hutter 2019) on a flat range, exactly as torch.optim.AdamW:
  //   p *= 1 - lr * wd;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
  //   p -= (lr / (1 - b1^step)) * m / (sqrt(v) / sqrt(1 - b2^step) + eps).
  // p, g, m, v: same shape, fp32; step >= 1.
  void (*adamw_update)(Tensor& p, const Tensor& g, Tensor& m, Tensor& v, double lr, double beta1,
                       double beta2, double eps, double weight_decay, int64_t step);
};

// The CPU backend's table.
const Ops& cpu_ops();

// Baichuan's ALiBi slopes for n heads (any n, including non powers of two such as 40):
// for n = 2^k, slope_i = s^(i+1) with s = 2^(-8/n); otherwise the 2^floor(log2 n) slopes followed
// by every other slope of 2 * 2^floor(log2 n). (Press et al. 2022; Baichuan-13B _get_interleave.)
void alibi_slopes(int64_t n_heads, float* out);

}  // namespace cs
