// Token embedding lookup and its scatter-add backward, vocab-parallel: the weight holds the rows
// [vocab_offset, vocab_offset + V) of the vocabulary; other tokens give zero rows (forward) and
// nothing (backward): the tensor-parallel sum of the ranks' outputs is the full lookup.
// tokens: (N) i32; weight, dweight: (V, D); out, dout: (N, D). weight may be bf16 (the compute copy
// under --bf16); out is f32.
#include <cstring>

#include "backend/cpu/bf16.h"
#include "backend/cpu/ops.h"
#include "backend/cpu/threads.h"
#include "backend/op_check.h"

namespace cs::cpu {

void embedding_forward(Ctx&, const Tensor& tokens, const Tensor& weight, int64_t vocab_offset, const Tensor& out) {
  check_arg("embedding_forward", "tokens", tokens, DType::I32, Device::CPU);
  check_f32_or_bf16("embedding_forward", "weight", weight, Device::CPU);
  check_f32("embedding_forward", "out", out, Device::CPU);
  const int64_t n = tokens.numel(), v = weight.size(0), d = weight.size(1);
  CS_CHECK(out.numel() == n * d && vocab_offset >= 0) << out.shape.str();
  const int32_t* ids = tokens.i32();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const int64_t row = int64_t(ids[i]) - vocab_offset;
    if (row >= 0 && row < v && weight.dtype == DType::BF16) {
      const Bf16* src = data_as<const Bf16>(weight) + row * d;
      float* dst = out.f32() + i * d;
      for (int64_t j = 0; j < d; ++j) dst[j] = load(src + j);
    } else if (row >= 0 && row < v) {
      std::memcpy(out.f32() + i * d, weight.f32() + row * d, size_t(d) * sizeof(float));
    } else {
      std::memset(out.f32() + i * d, 0, size_t(d) * sizeof(float));
    }
  }
}

void embedding_backward(Ctx&, const Tensor& tokens, int64_t vocab_offset, const Tensor& dout, const Tensor& dweight) {
  check_arg("embedding_backward", "tokens", tokens, DType::I32, Device::CPU);
  check_f32_args("embedding_backward", Device::CPU, {{"dout", &dout}, {"dweight", &dweight}});
  const int64_t n = tokens.numel(), v = dweight.size(0), d = dweight.size(1);
  CS_CHECK(dout.numel() == n * d && vocab_offset >= 0) << dout.shape.str();
  const int32_t* ids = tokens.i32();
  // Parallel over columns, so two rows with the same token never race and the summation order
  // (row order) is fixed: results are deterministic for any thread count.
#pragma omp parallel
  {
    const int nt = omp_threads(), id = omp_thread();
    const int64_t c0 = d * id / nt, c1 = d * (id + 1) / nt;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t row = int64_t(ids[i]) - vocab_offset;
      if (row < 0 || row >= v) continue;
      float* dst = dweight.f32() + row * d;
      const float* src = dout.f32() + i * d;
      for (int64_t c = c0; c < c1; ++c) dst[c] += src[c];
    }
  }
}

}  // namespace cs::cpu
