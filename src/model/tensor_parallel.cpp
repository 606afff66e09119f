// The tensor-parallel exchanges of a decoder layer (Megatron-LM's mappings: copy / reduce without
// sequence parallelism, gather / reduce-scatter with it; Shoeybi et al. 2019, Korthikanti et al.
// 2022), written as the forward half and the backward half each block calls. Row order: under
// sequence parallelism rank r holds rows [r Ns, (r + 1) Ns) of the N = B*T rows (batch-major, the
// model's row order), so an all-gather in rank order restores every row in place.
#include "model/layer.h"

namespace cs {

namespace {
Tensor rows(const Tensor& t, int64_t n, int64_t d) { return prefix(t, {n, d}); }
}  // namespace

void norm_for_column_parallel(const LayerCtx& c, const Tensor& x, const Tensor& w, const Tensor& rstd,
                              const Tensor& full) {
  const float eps = float(c.cfg.rms_norm_eps);
  if (!c.tp || !c.sp) {
    c.ops.rmsnorm_forward(c.ex, x, w, eps, full, rstd);
    return;
  }
  // The slice is in full's dtype (bf16 under --bf16), so the gather moves what the GEMM reads.
  const Tensor slice(c.comm.data, {x.size(0), x.size(1)}, full.dtype, c.comm.device);
  c.ops.rmsnorm_forward(c.ex, x, w, eps, slice, rstd);
  c.tp->all_gather(c.ex, slice, full);
}

Tensor row_parallel_partial(const LayerCtx& c, const Tensor& y) {
  return c.tp && c.sp ? rows(c.comm, c.dims.n(), y.size(1)) : y;
}

void reduce_row_parallel(const LayerCtx& c, const Tensor& partial, const Tensor& y) {
  if (!c.tp) return;
  if (c.sp)
    c.tp->reduce_scatter_sum(c.ex, partial, y);
  else
    c.tp->all_reduce_sum(c.ex, y);
}

Tensor row_parallel_grad(const LayerCtx& c, const Tensor& dres) {
  if (!c.tp || !c.sp) return dres;
  const Tensor full = rows(c.comm, c.dims.n(), dres.size(1));
  c.tp->all_gather(c.ex, dres, full);
  return full;
}

Tensor row_parallel_grad_for_gemms(const LayerCtx& c, const Tensor& dres, const Tensor& scratch) {
  const Tensor g = row_parallel_grad(c, dres);
  if (scratch.dtype == g.dtype || scratch.numel() < g.numel()) return g;
  const Tensor r = prefix(scratch, g.shape);
  c.ops.cast(c.ex, g, r);
  return r;
}

Tensor column_parallel_input_grad(const LayerCtx& c, const Tensor& dfull) {
  if (!c.tp) return dfull;
  if (!c.sp) {
    c.tp->all_reduce_sum(c.ex, dfull);
    return dfull;
  }
  const Tensor slice = rows(c.comm, c.dims.ns(), dfull.size(1));
  c.tp->reduce_scatter_sum(c.ex, dfull, slice);
  return slice;
}

}  // namespace cs
