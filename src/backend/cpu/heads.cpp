// Head split / merge between the token-major projection output (B, T, C) and the head-major
// layout (B, H, T, Hd) the attention kernel reads. Each is the other's backward. Either side may
// be f32 or bf16 (under --bf16: qkv, q, k, v and the attention output are bf16; the gradients of
// q, k, v are f32 and merge into a bf16 dqkv): a copy, or a widening / rounding one.
#include <cstring>
#include <type_traits>

#include "backend/cpu/bf16.h"
#include "backend/cpu/ops.h"
#include "backend/op_check.h"

namespace cs::cpu {

namespace {
template <bool kSplit, typename TokT, typename HeadT>
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
        HeadT* hp = data_as<HeadT>(head) + ((bi * h + hi) * t + ti) * hd;
        if constexpr (std::is_same_v<TokT, HeadT>) {
          if (kSplit)
            std::memcpy(hp, tp, size_t(hd) * sizeof(TokT));
          else
            std::memcpy(tp, hp, size_t(hd) * sizeof(TokT));
        } else if constexpr (kSplit) {
          for (int64_t i = 0; i < hd; ++i) store(hp + i, load(tp + i));
        } else {
          for (int64_t i = 0; i < hd; ++i) store(tp + i, load(hp + i));
        }
      }
}

// Both sides' element types from their tensors' dtypes.
template <bool kSplit>
void permute_any(const Tensor& tok, int64_t col0, const Tensor& head) {
  with_f32_or_bf16(tok, [&](auto t) {
    with_f32_or_bf16(head, [&](auto h) { permute<kSplit, decltype(t), decltype(h)>(tok, col0, head); });
  });
}
}  // namespace

void split_heads(Ctx&, const Tensor& x, int64_t col0, const Tensor& out) {
  check_f32_or_bf16("split_heads", "x", x, Device::CPU);
  check_f32_or_bf16("split_heads", "out", out, Device::CPU);
  permute_any<true>(x, col0, out);
}

void merge_heads(Ctx&, const Tensor& in, const Tensor& x, int64_t col0) {
  check_f32_or_bf16("merge_heads", "in", in, Device::CPU);
  check_f32_or_bf16("merge_heads", "x", x, Device::CPU);
  permute_any<false>(x, col0, in);
}

}  // namespace cs::cpu
