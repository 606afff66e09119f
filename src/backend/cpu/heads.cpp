// Head split / merge between the token-major projection output (B, T, C) and the head-major
// layout (B, H, T, Hd) the attention kernel reads. Each is the other's backward. The token-major
// side may be bf16 (under --bf16: qkv, a GEMM's output, and the merged output, o_proj's input).
#include <cstring>
#include <type_traits>

#include "backend/cpu/bf16.h"
#include "backend/cpu/ops.h"
#include "backend/op_check.h"

namespace cs::cpu {

namespace {
template <bool kSplit, typename TokT>
void permute(const Tensor& tok, int64_t col0, const Tensor& head) {
  CS_CHECK(tok.ndim() == 3 && head.ndim() == 4) << tok.shape.str() << head.shape.str();
  const int64_t b = head.size(0), h = head.size(1), t = head.size(2), hd = head.size(3);
  const int64_t c = tok.size(2);
  CS_CHECK(tok.size(0) == b && tok.size(1) == t && col0 + h * hd <= c)
      << tok.shape.str() << " col0 " << col0 << " " << head.shape.str();
#pragma omp parallel for collapse(3) schedule(static)
  for (int64_t bi = 0; bi < b; ++bi)
    for (int64_t hi = 0; hi < h; ++hi)
      for (int64_t ti = 0; ti < t; ++ti) {
        TokT* tp = data_as<TokT>(tok) + (bi * t + ti) * c + col0 + hi * hd;
        float* hp = head.f32() + ((bi * h + hi) * t + ti) * hd;
        if constexpr (std::is_same_v<TokT, float>) {
          if (kSplit)
            std::memcpy(hp, tp, size_t(hd) * sizeof(float));
          else
            std::memcpy(tp, hp, size_t(hd) * sizeof(float));
        } else if constexpr (kSplit) {
          for (int64_t i = 0; i < hd; ++i) hp[i] = load(tp + i);
        } else {
          to_bf16(hp, tp, hd);
        }
      }
}
}  // namespace

void split_heads(Ctx&, const Tensor& x, int64_t col0, const Tensor& out) {
  check_f32_or_bf16("split_heads", "x", x, Device::CPU);
  check_f32("split_heads", "out", out, Device::CPU);
  with_f32_or_bf16(x, [&](auto t) { permute<true, decltype(t)>(x, col0, out); });
}

void merge_heads(Ctx&, const Tensor& in, const Tensor& x, int64_t col0) {
  check_f32("merge_heads", "in", in, Device::CPU);
  check_f32_or_bf16("merge_heads", "x", x, Device::CPU);
  with_f32_or_bf16(x, [&](auto t) { permute<false, decltype(t)>(x, col0, in); });
}

}  // namespace cs::cpu
