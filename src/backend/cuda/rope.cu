// Rotary embedding, rotate-half form, in place on (B, H, T, Hd) (the CPU's contract and angles,
// cpu/rope.cpp): inv_freq = 1 / base^(2i/Hd) formed in double and rounded to fp32, the fp32 angle
// (pos * inv_freq, as Hugging Face forms it), cos and sin of it in double, rounded. One thread per
// (row, i < Hd/2) pair; packed sequences give each row its own position. x: f32|bf16|f16.
#include "backend/cuda/common.cuh"
#include "backend/cuda/ops.h"

namespace cs::cuda {

namespace {
template <typename T>
__global__ void rope_kernel(T* x, int64_t rows, int64_t heads, int64_t t_len, int64_t hd, float base, int64_t pos0,
                            const int32_t* positions, float sign) {
  const int64_t half = hd / 2, total = rows * half;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = e / half, i = e % half;
    const int64_t t = row % t_len, b = row / t_len / heads;
    const int64_t pos = positions ? int64_t(positions[b * t_len + t]) : t;
    const float inv_freq = float(1.0 / pow(double(base), double(2 * i) / double(hd)));
    const float angle = float(pos0 + pos) * inv_freq;
    const float cs = float(cos(double(angle))), sn = sign * float(sin(double(angle)));
    T* r = x + row * hd;
    const float x1 = ld(r + i), x2 = ld(r + half + i);
    st(r + i, x1 * cs - x2 * sn);
    st(r + half + i, x2 * cs + x1 * sn);
  }
}
}  // namespace

void rope_apply(Ctx& c, const Tensor& x, float base, int64_t pos0, const Tensor& positions, bool inverse) {
  check_float("rope_apply", "x", x, Device::CUDA);
  CS_CHECK(x.ndim() == 4 && x.size(3) % 2 == 0) << x.shape.str();
  const int64_t heads = x.size(1), t_len = x.size(2), hd = x.size(3), rows = x.size(0) * heads * t_len;
  const int32_t* pos = nullptr;
  if (positions.numel()) {
    check_arg("rope_apply", "positions", positions, DType::I32, Device::CUDA);
    CS_CHECK(positions.numel() == x.size(0) * t_len) << positions.shape.str() << x.shape.str();
    pos = ptr<int32_t>(positions);
  }
  if (!rows || !hd) return;
  with_float(x.dtype, [&](auto t) {
    using T = decltype(t);
    rope_kernel<T><<<blocks_for(rows * hd / 2, 256, 16384), 256, 0, stream(c)>>>(
        ptr<T>(x), rows, heads, t_len, hd, base, pos0, pos, inverse ? -1.f : 1.f);
  });
  check_launch("rope_apply");
}

}  // namespace cs::cuda
