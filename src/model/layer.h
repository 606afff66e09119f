// The decoder layer and its two blocks, as free forward/backward function pairs (llm.c style):
// no tape; the model calls backwards in the exact reverse order of forwards. Training and
// KV-cache decoding share these forwards: with a KvCache the attention block appends its keys and
// values to the cache and attends over everything cached.
// Tensor parallelism (Megatron's) lives in the blocks: a column-parallel input is every row of the
// normed activations, a row-parallel output is this rank's partial sum, reduced over the
// tensor-parallel group; under sequence parallelism the residual stream, the norms and their
// statistics hold only this rank's slice of the rows (Ns = N / TP), gathered before the
// column-parallel GEMMs and reduce-scattered after the row-parallel ones (tensor_parallel.cpp).
// Legend: B batch, T sequence, D hidden, H heads (this rank's), Hd head dim, A = H*Hd attention
// width (this rank's), F ffn (this rank's), N = B*T, Ns the rows of this rank's slice of the
// residual stream (N / TP under sequence parallelism, else N).
#pragma once
#include "backend/backend.h"
#include "backend/device_buffer.h"
#include "model/config.h"
#include "model/params.h"
#include "parallel/group.h"

namespace cs {

struct Dims {
  int64_t b = 0, t = 0;
  Widths w;        // D, H, Hd, F, V of this rank
  int64_t sp = 1;  // the residual stream's rows are split over this many ranks (sequence parallelism)
  int64_t n() const { return b * t; }
  int64_t ns() const { return b * t / sp; }
};

// What a layer's backward needs. Carved once for the planned maximum B, T (planned dims); every
// use views a prefix at the current dims (LayerSaved::at). ln1 and ln2 (the column-parallel
// inputs) have N rows; rstd1, rstd2 and h (the residual stream's) have Ns.
struct LayerSaved {
  Tensor ln1, rstd1, qkv, q, k, v, att, lse, attm, h, ln2, rstd2, gu, act;
  // Carves one set for dims d from c (a null buffer measures). The GEMMs' inputs and outputs
  // (ln1, qkv, attm, ln2, gu, act) take gemm_dtype (bf16 under --bf16), the norm statistics and
  // lse f32, the rest act_dtype.
  static LayerSaved carve(TensorCarver& c, const Dims& d, DType act_dtype, DType gemm_dtype = DType::F32);
  // The same memory viewed at dims d (d.n() at most the planned rows).
  LayerSaved at(const Dims& d) const;
};

// Backward work buffers, one set shared by all layers. dqkv and dgu, which only feed GEMMs, take
// gemm_dtype (bf16 under --bf16).
struct LayerScratch {
  Tensor dln, dqkv, dq, dk, dv, datt, dattm, dgu, dact;
  static LayerScratch carve(TensorCarver& c, const Dims& d, DType act_dtype, DType gemm_dtype = DType::F32);
  LayerScratch at(const Dims& d) const;
};

// Keys and values of every position seen so far, for one layer: (B, H, Tcap, Hd) each;
// positions [0, len) are filled.
struct KvCache {
  Tensor k, v;
  int64_t len = 0;
};

struct LayerCtx {
  Ctx& ex;          // execution context: every op runs on it
  const Ops& ops;   // ex.ops
  const ModelConfig& cfg;
  Dims dims;
  Tensor slopes;    // (H) this rank's ALiBi slopes, or empty for RoPE
  Group* tp = nullptr;  // the tensor-parallel group; null without tensor parallelism
  bool sp = false;      // sequence parallelism (with tp)
  Tensor comm;          // (N, D) scratch for the tensor-parallel exchanges (with tp)
  // Megatron's --reset-attention-mask: (B, T) i32 sample or document ids, attention staying
  // within a run of equal ids; --reset-position-ids: (B, T) i32 RoPE positions. Each may be empty
  // (plain causal attention; positions 0..T-1).
  Tensor segments, positions;
  // beta of the weight-gradient GEMMs: 0 in a layer's first backward of a step (Model::zero_grad
  // leaves the weight matrices' gradients to be overwritten rather than zeroing them first), 1
  // after (gradient accumulation over micro-batches).
  float weight_grad_beta = 1.f;
};

// The tensor-parallel exchanges (Megatron's conjugate mappings, written out for the explicit
// backward; every one is a no-op or a plain pass-through without tp).
// The rmsnorm of x (Ns rows) as the N rows a column-parallel GEMM takes: under sequence
// parallelism normed into comm and all-gathered into full; else normed into full directly.
void norm_for_column_parallel(const LayerCtx& c, const Tensor& x, const Tensor& w, const Tensor& rstd,
                              const Tensor& full);
// Where a row-parallel GEMM writes its partial output (N rows): comm under sequence parallelism,
// y itself otherwise; reduce_row_parallel then makes y (Ns rows) the sum over the group (SP:
// reduce-scatter; TP: all-reduce in place).
Tensor row_parallel_partial(const LayerCtx& c, const Tensor& y);
void reduce_row_parallel(const LayerCtx& c, const Tensor& partial, const Tensor& y);
// Backward of reduce_row_parallel: the N rows of the output's gradient (SP: dres all-gathered
// into comm; else dres itself).
Tensor row_parallel_grad(const LayerCtx& c, const Tensor& dres);
// The same gradient as the two GEMMs of a row-parallel layer's backward read it: rounded once into
// `scratch` (a GEMM-dtype buffer free until those GEMMs are done) when scratch's dtype is not the
// gradient's and it has the room; else the gradient itself (the GEMMs would each round it the
// same way: the same bits, one pass less).
Tensor row_parallel_grad_for_gemms(const LayerCtx& c, const Tensor& dres, const Tensor& scratch);
// Backward of norm_for_column_parallel's gather: the column-parallel input's gradient (N rows,
// this rank's partial sum) summed over the group, as the Ns rows the norm backward takes (SP:
// reduce-scattered into comm; else all-reduced in place and returned).
Tensor column_parallel_input_grad(const LayerCtx& c, const Tensor& dfull);

// Attention block. x: (N, D) normed input; y: (N, D) = o_proj(attention(W_pack x)). With a cache
// the rows are positions [cache->len, cache->len + T) and the cache grows by T (the caller moves
// len on); without one they are positions [0, T).
void attention_block_forward(const LayerCtx& c, const LayerWeights& w, const Tensor& x, const Tensor& y,
                             const LayerSaved& s, KvCache* cache = nullptr);
// dy: (N, D) in; dx: (N, D) overwritten; grads of W_pack and o_proj accumulate (beta
// c.weight_grad_beta: overwritten in a step's first backward).
void attention_block_backward(const LayerCtx& c, const LayerWeights& w, const LayerWeights& g,
                              const LayerSaved& s, const Tensor& x, const Tensor& dy, const Tensor& dx,
                              const LayerScratch& k);

// MLP block. x: (N, D) normed input; y: (N, D) = down(silu(gate x) * up x).
void mlp_block_forward(const LayerCtx& c, const LayerWeights& w, const Tensor& x, const Tensor& y,
                       const LayerSaved& s);
void mlp_block_backward(const LayerCtx& c, const LayerWeights& w, const LayerWeights& g,
                        const LayerSaved& s, const Tensor& x, const Tensor& dy, const Tensor& dx,
                        const LayerScratch& k);

// Decoder layer: h = x + attn(ln1(x)); out = h + mlp(ln2(h)). x, out: (N, D).
void decoder_layer_forward(const LayerCtx& c, const LayerWeights& w, const Tensor& x, const Tensor& out,
                           const LayerSaved& s, KvCache* cache = nullptr);
// dres: (N, D) gradient of out in, gradient of x out (in place: the residual stream).
void decoder_layer_backward(const LayerCtx& c, const LayerWeights& w, const LayerWeights& g,
                            const LayerSaved& s, const Tensor& x, const Tensor& dres,
                            const LayerScratch& k);

// The model's end: y = rmsnorm(x) (saved in lnf, rstd), logits = y W_head^T (this rank's
// vocabulary columns). x: (Ns, D); lnf: (N, D).
void head_forward(const LayerCtx& c, const Tensor& norm_w, const Tensor& head_w, const Tensor& x,
                  const Tensor& lnf, const Tensor& rstd, const Tensor& logits);

// A view of the first numel(s) elements of t with shape s (t planned for a larger size).
Tensor prefix(const Tensor& t, Shape s);

}  // namespace cs
