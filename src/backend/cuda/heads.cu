// Head split / merge between (B, T, C) and (B, H, T, Hd) on the GPU (cpu/heads.cpp's contract): a
// copy, or a widening / rounding one when the sides' dtypes differ (f32|bf16|f16 each). Token rows
// on the grid's y, 8 consecutive elements a thread (16-byte accesses of bf16 / f16) when
// Hd, the column offset, the row width and the pointers allow, else one: both sides are read and
// written in runs of Hd (elementwise_kernels.cuh).
#include "backend/cuda/common.cuh"
#include "backend/cuda/elementwise_kernels.cuh"
#include "backend/cuda/ops.h"

namespace cs::cuda {

namespace {
template <bool kSplit>
void permute(Ctx& c, const char* op, const Tensor& tok, int64_t col0, const Tensor& head) {
  CS_CHECK(tok.ndim() == 3 && head.ndim() == 4) << tok.shape.str() << head.shape.str();
  const int64_t b = head.size(0), h = head.size(1), t = head.size(2), hd = head.size(3), cols = tok.size(2);
  CS_CHECK(tok.size(0) == b && tok.size(1) == t && col0 + h * hd <= cols)
      << tok.shape.str() << " col0 " << col0 << " " << head.shape.str();
  CS_CHECK(h * hd < (int64_t(1) << 31)) << head.shape.str() << ": over 2^31 head columns a token";
  const int64_t rows = b * t;
  if (!rows || !h || !hd) return;
  const bool wide = hd % 8 == 0 && col0 % 8 == 0 && cols % 8 == 0 && vec::aligned16(tok.data, head.data);
  with_float(tok.dtype, [&](auto tt) {
    with_float(head.dtype, [&](auto th) {
      using TokT = decltype(tt);
      using HeadT = decltype(th);
      vec::with_width<8>(wide, [&](auto w) {
        constexpr int N = decltype(w)::value;
        const RowsLaunch l = rows_launch(rows, h * hd / N);
        CS_LAUNCH(l.grid, l.threads, 0, stream(c), ew::permute<N, kSplit, TokT, HeadT>)(ptr<TokT>(tok), ptr<HeadT>(head),
                                                                                  rows, h, t, hd, cols, col0);
      });
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
