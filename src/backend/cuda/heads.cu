// Head split / merge between (B, T, C) and (B, H, T, Hd) on the GPU (cpu/heads.cpp's contract): a
// copy, or a widening / rounding one when the sides' dtypes differ (f32|bf16|f16 each). One thread
// per element, consecutive threads along Hd: both sides are read and written in runs of Hd.
#include "backend/cuda/common.cuh"
#include "backend/cuda/ops.h"

namespace cs::cuda {

namespace {
template <bool kSplit, typename TokT, typename HeadT>
__global__ void permute_kernel(TokT* tok, HeadT* head, int64_t h, int64_t t, int64_t hd, int64_t c, int64_t col0,
                               int64_t total) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = e % hd, ti = (e / hd) % t, hi = (e / hd / t) % h, bi = e / hd / t / h;
    TokT* tp = tok + (bi * t + ti) * c + col0 + hi * hd + i;
    if (kSplit) st(head + e, ld(tp));
    else st(tp, ld(head + e));
  }
}

template <bool kSplit>
void permute(Ctx& c, const char* op, const Tensor& tok, int64_t col0, const Tensor& head) {
  CS_CHECK(tok.ndim() == 3 && head.ndim() == 4) << tok.shape.str() << head.shape.str();
  const int64_t b = head.size(0), h = head.size(1), t = head.size(2), hd = head.size(3), cols = tok.size(2);
  CS_CHECK(tok.size(0) == b && tok.size(1) == t && col0 + h * hd <= cols)
      << tok.shape.str() << " col0 " << col0 << " " << head.shape.str();
  const int64_t total = head.numel();
  if (!total) return;
  with_float(tok.dtype, [&](auto tt) {
    with_float(head.dtype, [&](auto th) {
      using TokT = decltype(tt);
      using HeadT = decltype(th);
      permute_kernel<kSplit, TokT, HeadT><<<blocks_for(total, 256, 16384), 256, 0, stream(c)>>>(
          ptr<TokT>(tok), ptr<HeadT>(head), h, t, hd, cols, col0, total);
    });
  });
  check_launch(op);
}
}  // namespace

void split_heads(Ctx& c, const Tensor& x, int64_t col0, const Tensor& out) {
  check_float("split_heads", "x", x, Device::CUDA);
  check_float("split_heads", "out", out, Device::CUDA);
  permute<true>(c, "split_heads", x, col0, out);
}

void merge_heads(Ctx& c, const Tensor& in, const Tensor& x, int64_t col0) {
  check_float("merge_heads", "in", in, Device::CUDA);
  check_float("merge_heads", "x", x, Device::CUDA);
  permute<false>(c, "merge_heads", x, col0, in);
}

}  // namespace cs::cuda
