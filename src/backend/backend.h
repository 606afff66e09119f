// The backend boundary: memory + maths + an execution context. model/, optim/, parallel/ and
// train/ reach a device only through this header:
//   Backend  owns device memory (allocate, host<->device and device<->device copies, zero,
//            synchronize) and makes execution contexts;
//   Ctx      the execution context every op and collective receives (stream, BLAS handle,
//            scratch workspace): nothing is global;
//   Ops      the op table, one entry per op's forward or backward; the CPU table is filled by
//            backend/cpu, the CUDA table by backend/cuda.
// Ops take Tensor views on the backend's device and check dtypes and devices (a mismatch is a
// cs::Error naming the op, the argument and what was expected) and shapes (CS_CHECK: a bug), and
// never allocate per call beyond the context's workspace or reusable per-thread scratch. Reductions write into device tensors
// (F64 [1]); the host reads them only where it logs or decides, once per step.
// Legend: B batch, T sequence, D hidden, H heads, Hd head dim, F ffn, V vocab, N = B*T rows.
// Gradient convention: parameter gradients accumulate (+=); activation gradients overwrite,
// except where stated (rmsnorm_backward's dx can accumulate: that is where the residual joins).
// dtypes: f32 everywhere unless stated; token ids i32. "f32|bf16" marks an argument that may be
// either (--bf16: the parameters' compute copy, and the activations that only feed GEMMs); the
// CPU table computes in f32 apart from bf16 GEMMs (see src/backend/README.md).
#pragma once
#include <memory>
#include <string>

#include "core/tensor.h"

namespace cs {

class Backend;
struct Ops;

// An execution context: where an op runs and what it may use. Made by Backend::make_context;
// one per thread of control (one per rank; the CUDA backend's holds its stream and cuBLASLt
// handle). Ops issued on one context run in issue order.
struct Ctx {
  Backend& backend;
  const Ops& ops;
  void* stream = nullptr;  // cudaStream_t on CUDA; null on CPU (ops run before they return)
  void* blas = nullptr;    // cublasLtHandle_t on CUDA; null on CPU
  Tensor workspace;        // scratch device memory (U8) an op may use for the length of its call
  Ctx(Backend& b, const Ops& o) : backend(b), ops(o) {}
  virtual ~Ctx() = default;  // a backend's context may own its stream, handle and workspace
  Ctx(const Ctx&) = delete;
  Ctx& operator=(const Ctx&) = delete;
};

// A device: its memory and its op table.
class Backend {
 public:
  virtual ~Backend() = default;
  // "cpu" or "cuda".
  virtual const char* name() const = 0;
  virtual Device device() const = 0;
  // Whether the host may read and write this backend's memory directly (ggml's is_host): host
  // edges then skip their staging copy.
  virtual bool is_host() const = 0;
  virtual const Ops& ops() const = 0;
  // A new execution context.
  virtual std::unique_ptr<Ctx> make_context() = 0;

  // Zero-filled device memory, 64-byte aligned; a cs::Error naming the size when there is none.
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* p) noexcept = 0;
  // dst's bytes = host (dst.nbytes() bytes). Returns once host may be reused.
  virtual void upload(Ctx& c, const void* host, const Tensor& dst) = 0;
  // host (src.nbytes() bytes) = src's bytes. Waits for the work queued on c before reading.
  virtual void download(Ctx& c, const Tensor& src, void* host) = 0;
  // dst = src's bytes, both on this device, equal byte sizes (a raw copy: no conversion, see
  // Ops::cast); src == dst is allowed.
  virtual void copy(Ctx& c, const Tensor& src, const Tensor& dst) = 0;
  // t = 0.
  virtual void zero(Ctx& c, const Tensor& t) = 0;
  // Waits until everything issued on c has finished.
  virtual void synchronize(Ctx& c) = 0;
};

// The backend for --device NAME: "cpu" always; "cuda" when the build has it. Anything else, or
// cuda in a build without it, is a UsageError in one line naming the flag.
std::unique_ptr<Backend> make_backend(const std::string& name);
// The CUDA devices this process sees: 0 in a build without CUDA, or without a GPU or driver.
int cuda_device_count();
// The process's CPU backend (stateless; shared).
Backend& cpu_backend();

struct Ops {
  const char* name;

  // c = alpha * op(a) @ op(b) + beta * c; a, b, c 2-D; op(x) = x^T when the flag is set.
  // a, b, c: f32|bf16. When any is bf16 the products are of bf16 values (an f32 operand rounded
  // to nearest even first), accumulated in f32 (a bf16 c rounded once).
  void (*matmul)(Ctx& c, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b,
                 const Tensor& out, float alpha, float beta);

  // Vocab-parallel lookup (Megatron's VocabParallelEmbedding): weight holds vocabulary rows
  // [vocab_offset, vocab_offset + V); out[n, :] = weight[tokens[n] - vocab_offset, :] for a token
  // in that range, zeros otherwise (the tensor-parallel sum of every rank's out is the lookup).
  // tokens: (N) i32; weight: (V, D) f32|bf16; out: (N, D). Without tensor parallelism vocab_offset is 0.
  void (*embedding_forward)(Ctx& c, const Tensor& tokens, const Tensor& weight,
                            int64_t vocab_offset, const Tensor& out);
  // dweight[tokens[n] - vocab_offset, :] += dout[n, :] for the tokens in this rank's range.
  void (*embedding_backward)(Ctx& c, const Tensor& tokens, int64_t vocab_offset,
                             const Tensor& dout, const Tensor& dweight);

  // y = x * rstd * w, rstd = 1/sqrt(mean(x^2) + eps). x, y: (N, D); w: (D); rstd: (N) saved.
  // w and y: f32|bf16 (y rounded from the f32 result).
  void (*rmsnorm_forward)(Ctx& c, const Tensor& x, const Tensor& w, float eps, const Tensor& y,
                          const Tensor& rstd);
  // dx (= or += when accumulate), dw +=. w: f32|bf16.
  void (*rmsnorm_backward)(Ctx& c, const Tensor& x, const Tensor& w, const Tensor& rstd,
                           const Tensor& dy, const Tensor& dx, const Tensor& dw,
                           bool accumulate_dx);

  // Rotary embedding, rotate-half form, in place on x: (B, H, T, Hd) f32|bf16 (computed in f32,
  // a bf16 x rounded once); the position of row (b, t)
  // is pos0 + t, or pos0 + positions[b, t] when positions (B, T) i32 is given (packed sequences:
  // each sample's positions start at 0; values in [0, T)). inverse=true rotates by -angle: that
  // is the backward (the rotation is orthogonal).
  void (*rope_apply)(Ctx& c, const Tensor& x, float base, int64_t pos0, const Tensor& positions,
                     bool inverse);

  // out (B, H, T, Hd) f32|bf16 = columns [col0, col0 + H*Hd) of x (B, T, C) f32|bf16, heads split.
  void (*split_heads)(Ctx& c, const Tensor& x, int64_t col0, const Tensor& out);
  // Columns [col0, col0 + H*Hd) of x (B, T, C) = in (B, H, T, Hd), heads merged (overwrite);
  // in, x: f32|bf16.
  void (*merge_heads)(Ctx& c, const Tensor& in, const Tensor& x, int64_t col0);

  // Causal softmax attention, tiled with an online softmax: no (T, T) matrix is formed.
  // q, k, v, o: (B, H, T, Hd); lse: (B, H, T) saved; slopes: (H) ALiBi slopes or an empty
  // tensor (no bias). score = q.k / sqrt(Hd) + slope * (j - i) for j <= i.
  // segments: (B, T) i32 or an empty tensor (one segment). A run of equal ids along t is one
  // segment (a packed sample, Megatron's --reset-attention-mask): query i attends only to the
  // keys j <= i of its own run, and the tiles that lie wholly across a boundary are skipped.
  // q, k, v, o (and dout): all f32, or all bf16 (the tile products in bf16 with f32
  // accumulation; Hd even); lse, dq, dk, dv: f32.
  void (*attention_forward)(Ctx& c, const Tensor& q, const Tensor& k, const Tensor& v,
                            const Tensor& slopes, const Tensor& segments, const Tensor& o,
                            const Tensor& lse);
  // dq, dk, dv overwrite.
  void (*attention_backward)(Ctx& c, const Tensor& q, const Tensor& k, const Tensor& v,
                             const Tensor& slopes, const Tensor& segments, const Tensor& o,
                             const Tensor& lse, const Tensor& dout, const Tensor& dq,
                             const Tensor& dk, const Tensor& dv);

  // Inference attention over a KV cache: q (B, H, Tq, Hd) are the positions [tk - Tq, tk);
  // k_cache, v_cache (B, H, Tcap, Hd) hold positions [0, tk) (tk <= Tcap); o (B, H, Tq, Hd).
  // Causal with the same scores as attention_forward.
  void (*attention_decode)(Ctx& c, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                           int64_t tk, const Tensor& slopes, const Tensor& o);
  // Writes x (B, H, T, Hd) into cache (B, H, Tcap, Hd) at positions [pos, pos + T).
  void (*kv_append)(Ctx& c, const Tensor& x, const Tensor& cache, int64_t pos);

  // gu: (N, 2F) f32|bf16 with gate in columns [0, F) and up in [F, 2F); out = silu(gate) * up:
  // (N, F), f32|bf16.
  void (*swiglu_forward)(Ctx& c, const Tensor& gu, const Tensor& out);
  // dgu: (N, 2F) f32|bf16, overwrite (gu: f32|bf16; dgu may be gu itself, in the same dtype).
  void (*swiglu_backward)(Ctx& c, const Tensor& gu, const Tensor& dout, const Tensor& dgu);

  // Vocab-parallel cross entropy (Megatron's), in two steps around the tensor-parallel exchange;
  // logits (N, V) are this rank's vocabulary columns [vocab_offset, vocab_offset + V), so no rank
  // holds the full logits. Step 1, this rank's part: lse[n] = logsumexp(logits[n]) over its columns;
  // target_logit[n] = logits[n, targets[n] - vocab_offset] when the target is in its range, else 0.
  // targets: (N) i32, -1 = ignored; lse, target_logit: (N).
  void (*cross_entropy_forward)(Ctx& c, const Tensor& logits, const Tensor& targets,
                                int64_t vocab_offset, const Tensor& lse,
                                const Tensor& target_logit);
  // Step 2, after lse_parts (P, N) = every rank's lse (all-gathered, rank order) and target_logit
  // summed over the ranks: lse[n] = logsumexp over p of lse_parts[p, n]; losses[n] = lse[n] -
  // target_logit[n], 0 for an ignored target. With P = 1, lse_parts may alias lse (and the result
  // is the single-rank cross entropy bit for bit).
  void (*cross_entropy_combine)(Ctx& c, const Tensor& lse_parts, const Tensor& target_logit,
                                const Tensor& targets, const Tensor& losses, const Tensor& lse);
  // dlogits = scale * (softmax(logits) - onehot(target)) over this rank's columns, with lse the
  // combined log-sum-exp; ignored rows 0. dlogits: f32|bf16; it may alias logits (a bf16 dlogits
  // starting at the logits' first byte: the f32 values rounded).
  void (*cross_entropy_backward)(Ctx& c, const Tensor& logits, const Tensor& lse,
                                 const Tensor& targets, int64_t vocab_offset, float scale,
                                 const Tensor& dlogits);

  // y += x (same shape).
  void (*add_inplace)(Ctx& c, const Tensor& y, const Tensor& x);
  // x *= alpha.
  void (*scale)(Ctx& c, const Tensor& x, float alpha);
  // y = x converted to y's dtype (f32 <-> bf16 / f16, round to nearest even; same dtype: a copy);
  // equal element counts; any other dtype pair is a cs::Error naming both.
  void (*cast)(Ctx& c, const Tensor& x, const Tensor& y);
  // out (F64, one element) = sum of all elements of x (f32, or f64: partial sums), accumulated in
  // double in a fixed order (blocks of a fixed size, their partial sums added in block order): the
  // same bits for any thread count.
  void (*sum)(Ctx& c, const Tensor& x, const Tensor& out);
  // out (F64 [1]) = sum of squares of x, same order rules (gradient norms; inf/nan propagate).
  void (*sum_squares)(Ctx& c, const Tensor& x, const Tensor& out);
  // out (F64 [1]) = how many elements of x (f32) are zero (-0 too, NaN not: torch.count_nonzero's
  // complement; Megatron's --log-num-zeros-in-grad), exact below 2^53.
  void (*count_zeros)(Ctx& c, const Tensor& x, const Tensor& out);

  // One AdamW step (Loshchilov & Hutter 2019) on a flat range, exactly as torch.optim.AdamW:
  //   p *= 1 - lr * wd;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
  //   p -= (lr / (1 - b1^step)) * m / (sqrt(v) / sqrt(1 - b2^step) + eps).
  // p, g, m, v: same shape, fp32; step >= 1. g is read as the fp32 product g * grad_scale (the
  // clipping coefficient, 1 without clipping): the value a separate scale pass over g would store,
  // without that pass; g itself is not written. half: an empty tensor, or bf16 of p's size that
  // receives the updated p rounded to nearest even in the same pass (the compute copy of fp32
  // master weights under --bf16: no second pass to cast them).
  void (*adamw_update)(Ctx& c, const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v,
                       double lr, double beta1, double beta2, double eps, double weight_decay,
                       int64_t step, float grad_scale, const Tensor& half);
};

// The CPU backend's op table.
const Ops& cpu_ops();

// Baichuan's ALiBi slopes for n heads (any n, including non powers of two such as 40), on the
// host: for n = 2^k, slope_i = s^(i+1) with s = 2^(-8/n); otherwise the 2^floor(log2 n) slopes
// followed by every other slope of 2 * 2^floor(log2 n). (Press et al. 2022; Baichuan-13B
// _get_interleave.)
void alibi_slopes(int64_t n_heads, float* out);

}  // namespace cs
