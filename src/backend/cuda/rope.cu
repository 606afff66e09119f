// Rotary embedding, rotate-half form, in place on (B, H, T, Hd) (the CPU's contract and angles,
// cpu/rope.cpp): inv_freq = 1 / base^(2i/Hd) formed in double and rounded to fp32, the fp32 angle
// (pos * inv_freq, as Hugging Face forms it), cos and sin of it in double, rounded. Those are
// formed once per call into a table in the op's scratch (one row per position, or per (b, t)
// when packed sequences give each row its own position), not once per head; the rotation then
// reads the table, 4 pairs a thread (16-byte accesses of the table, 8 of bf16 / f16) when Hd and
// the pointers allow (elementwise_kernels.cuh). x: f32|bf16|f16.
#include "backend/cuda/common.cuh"
#include "backend/cuda/elementwise_kernels.cuh"
#include "backend/cuda/ops.h"

namespace cs::cuda {

void rope_apply(Ctx& c, const Tensor& x, float base, int64_t pos0, const Tensor& positions, bool inverse) {
  check_float("rope_apply", "x", x, Device::CUDA);
  CS_CHECK(x.ndim() == 4 && x.size(3) % 2 == 0) << x.shape.str();
  const int64_t heads = x.size(1), t_len = x.size(2), hd = x.size(3), half = hd / 2, rows = x.size(0) * heads * t_len;
  const int32_t* pos = nullptr;
  if (positions.numel()) {
    check_arg("rope_apply", "positions", positions, DType::I32, Device::CUDA);
    CS_CHECK(positions.numel() == x.size(0) * t_len) << positions.shape.str() << x.shape.str();
    pos = ptr<int32_t>(positions);
  }
  if (!rows || !half) return;
  const int64_t table_rows = pos ? x.size(0) * t_len : t_len;
  OpScratch scratch(c);
  float* cos_t = scratch.take<float>(table_rows * half, "rope_apply (cos table)");
  float* sin_t = scratch.take<float>(table_rows * half, "rope_apply (sin table)");
  CS_LAUNCH(blocks_for(table_rows * half, 256, 4096), 256, 0, stream(c), ew::rope_table<int32_t>)(table_rows, half, base, pos0, pos,
                                                                                  cos_t, sin_t);
  check_launch("rope_apply (table)");
  with_float(x.dtype, [&](auto t) {
    using T = decltype(t);
    vec::with_width<4>(half % 4 == 0 && vec::aligned16(x.data, cos_t, sin_t), [&](auto w) {
      constexpr int N = decltype(w)::value;
      CS_LAUNCH(blocks_for(rows * half / N, 256, 16384), 256, 0, stream(c), ew::rope_rotate<N, T>)(
          ptr<T>(x), rows, heads, t_len, half, cos_t, sin_t, pos != nullptr, inverse ? -1.f : 1.f);
    });
  });
  check_launch("rope_apply");
}

}  // namespace cs::cuda
