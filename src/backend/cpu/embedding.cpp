// Token embedding lookup and its scatter-add backward.
// tokens: (N) i32; weight, dweight: (V, D); out, dout: (N, D).
#include <cstring>

#include "backend/cpu/ops.h"
#include "backend/cpu/threads.h"
#include "backend/op_check.h"

namespace cs::cpu {

void embedding_forward(Ctx&, const Tensor& tokens, const Tensor& weight, const Tensor& out) {
  check_arg("embedding_forward", "tokens", tokens, DType::I32, Device::CPU);
  check_f32_args("embedding_forward", Device::CPU, {{"weight", &weight}, {"out", &out}});
  const int64_t n = tokens.numel(), v = weight.size(0), d = weight.size(1);
  CS_CHECK(out.numel() == n * d) << out.shape.str();
  const int32_t* ids = tokens.i32();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    CS_CHECK(ids[i] >= 0 && ids[i] < v) << "token " << ids[i] << " outside vocab " << v;
    std::memcpy(out.f32() + i * d, weight.f32() + int64_t(ids[i]) * d, d * sizeof(float));
  }
}

void embedding_backward(Ctx&, const Tensor& tokens, const Tensor& dout, const Tensor& dweight) {
  check_arg("embedding_backward", "tokens", tokens, DType::I32, Device::CPU);
  check_f32_args("embedding_backward", Device::CPU, {{"dout", &dout}, {"dweight", &dweight}});
  const int64_t n = tokens.numel(), d = dweight.size(1);
  const int32_t* ids = tokens.i32();
  // Parallel over columns, so two rows with the same token never race and the summation order
  // (row order) is fixed: results are deterministic for any thread count.
#pragma omp parallel
  {
    const int nt = omp_threads(), id = omp_thread();
    const int64_t c0 = d * id / nt, c1 = d * (id + 1) / nt;
    for (int64_t i = 0; i < n; ++i) {
      float* dst = dweight.f32() + int64_t(ids[i]) * d;
      const float* src = dout.f32() + i * d;
      for (int64_t c = c0; c < c1; ++c) dst[c] += src[c];
    }
  }
}

}  // namespace cs::cpu
