// Rotary position embedding, rotate-half form (Su et al. 2021; HF Baichuan-7B / LLaMA):
// x' = x * cos + rotate_half(x) * sin with rotate_half(x) = (-x2, x1), angle(t, i) = t * base^(-2i/Hd)
// for i < Hd/2, the same angle on both halves. The rotation is orthogonal, so the backward is
// the same rotation by -angle. x: (B, H, T, Hd), in place. Packed sequences give each row its
// position (a sample's own, from 0): the table is indexed by it instead of by t. x: f32|bf16.
#include <cmath>
#include <vector>

#include "backend/cpu/bf16.h"
#include "backend/cpu/ops.h"
#include "backend/op_check.h"

namespace cs::cpu {

void rope_apply(Ctx&, const Tensor& x, float base, int64_t pos0, const Tensor& positions, bool inverse) {
  check_f32_or_bf16("rope_apply", "x", x, Device::CPU);
  CS_CHECK(x.ndim() == 4 && x.size(3) % 2 == 0) << x.shape.str();
  const int64_t heads = x.size(1), bh = x.size(0) * heads, t_len = x.size(2), hd = x.size(3), half = hd / 2;
  const int32_t* pos = nullptr;  // packed: row (b, t) takes the table's row positions[b, t]
  if (positions.numel()) {
    check_arg("rope_apply", "positions", positions, DType::I32, Device::CPU);
    CS_CHECK(positions.numel() == x.size(0) * t_len) << positions.shape.str() << x.shape.str();
    pos = positions.i32();
    for (int64_t i = 0; i < positions.numel(); ++i) CS_CHECK(pos[i] >= 0 && pos[i] < t_len) << "position " << pos[i];
  }
  // Angles in fp32 as HF computes them (inv_freq and t * inv_freq are float32 tensors there);
  // cos/sin of the fp32 angle evaluated in double, then rounded. The table is kept for the next
  // call with the same base, positions and head dim (training calls it 4x per layer with the same
  // one; building it costs about as much as the rotation).
  struct Table {
    float base = 0;
    int64_t pos0 = -1, t_len = 0, hd = 0;
    std::vector<float> cs;
  };
  thread_local Table tab;
  if (tab.base != base || tab.pos0 != pos0 || tab.t_len != t_len || tab.hd != hd) {
    tab.cs.resize(size_t(t_len * hd));
    for (int64_t t = 0; t < t_len; ++t)
      for (int64_t i = 0; i < half; ++i) {
        const float inv_freq = float(1.0 / std::pow(double(base), double(2 * i) / double(hd)));
        const float angle = float(pos0 + t) * inv_freq;
        tab.cs[size_t(t * hd + i)] = float(std::cos(double(angle)));
        tab.cs[size_t(t * hd + half + i)] = float(std::sin(double(angle)));
      }
    tab.base = base;
    tab.pos0 = pos0;
    tab.t_len = t_len;
    tab.hd = hd;
  }
  const std::vector<float>& cs_tab = tab.cs;
  const float sign = inverse ? -1.f : 1.f;  // the backward's -angle: sin negated (exactly)
  with_f32_or_bf16(x, [&](auto elem) {  // bf16 (--bf16's q and k): rotated in f32, rounded once
    using T = decltype(elem);
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t r = 0; r < bh; ++r)
      for (int64_t t = 0; t < t_len; ++t) {
        T* row = data_as<T>(x) + (r * t_len + t) * hd;
        const float* c = cs_tab.data() + (pos ? pos[r / heads * t_len + t] : t) * hd;
        const float* s = c + half;
#pragma omp simd
        for (int64_t i = 0; i < half; ++i) {
          const float x1 = load(row + i), x2 = load(row + half + i), si = sign * s[i];
          store(row + i, x1 * c[i] - x2 * si);
          store(row + half + i, x2 * c[i] + x1 * si);
        }
      }
  });
}

}  // namespace cs::cpu
