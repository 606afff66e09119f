// Vocab-parallel token embedding and its scatter-add backward on the GPU (the CPU's contract,
// cpu/embedding.cpp): tokens outside [vocab_offset, vocab_offset + V) give zero rows and no
// gradient. The backward gives each thread one column and walks the rows in order, so repeated
// tokens never race and the sums are the same every run (no atomics). weight: f32|bf16|f16.
#include "backend/cuda/common.cuh"
#include "backend/cuda/ops.h"

namespace cs::cuda {

namespace {
template <typename W>
__global__ void embed_kernel(const int32_t* ids, const W* w, int64_t v, int64_t d, int64_t off, float* out) {
  const int64_t i = blockIdx.x;
  const int64_t row = int64_t(ids[i]) - off;
  float* dst = out + i * d;
  if (row < 0 || row >= v) {
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) dst[j] = 0.f;
    return;
  }
  const W* src = w + row * d;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) dst[j] = ld(src + j);
}

__global__ void embed_backward_kernel(const int32_t* __restrict__ ids, int64_t n, int64_t v, int64_t d, int64_t off,
                                      const float* __restrict__ dout, float* __restrict__ dw) {
  const int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (j >= d) return;
  // kBatch rows' gradients loaded first (kBatch loads in flight), then added in row order: the
  // read-modify-writes stay in order, so a token repeated within a batch is still summed right.
  constexpr int kBatch = 8;
  for (int64_t i0 = 0; i0 < n; i0 += kBatch) {
    int64_t row[kBatch];
    float g[kBatch];
#pragma unroll
    for (int k = 0; k < kBatch; ++k) {
      const int64_t i = i0 + k;
      row[k] = i < n ? int64_t(ids[i]) - off : -1;
      g[k] = i < n ? dout[i * d + j] : 0.f;
    }
#pragma unroll
    for (int k = 0; k < kBatch; ++k)
      if (row[k] >= 0 && row[k] < v) dw[row[k] * d + j] += g[k];
  }
}
}  // namespace

void embedding_forward(Ctx& c, const Tensor& tokens, const Tensor& weight, int64_t vocab_offset, const Tensor& out) {
  check_arg("embedding_forward", "tokens", tokens, DType::I32, Device::CUDA);
  check_float("embedding_forward", "weight", weight, Device::CUDA);
  check_f32("embedding_forward", "out", out, Device::CUDA);
  const int64_t n = tokens.numel(), v = weight.size(0), d = weight.size(1);
  CS_CHECK(out.numel() == n * d && vocab_offset >= 0) << out.shape.str();
  if (!n) return;
  with_float(weight.dtype, [&](auto t) {
    using W = decltype(t);
    embed_kernel<W><<<unsigned(n), 256, 0, stream(c)>>>(ptr<int32_t>(tokens), ptr<W>(weight), v, d, vocab_offset,
                                                        ptr<float>(out));
  });
  check_launch("embedding_forward");
}

void embedding_backward(Ctx& c, const Tensor& tokens, int64_t vocab_offset, const Tensor& dout, const Tensor& dweight) {
  check_arg("embedding_backward", "tokens", tokens, DType::I32, Device::CUDA);
  check_f32_args("embedding_backward", Device::CUDA, {{"dout", &dout}, {"dweight", &dweight}});
  const int64_t n = tokens.numel(), v = dweight.size(0), d = dweight.size(1);
  CS_CHECK(dout.numel() == n * d && vocab_offset >= 0) << dout.shape.str();
  if (!n || !d) return;
  embed_backward_kernel<<<blocks_for(d, 128), 128, 0, stream(c)>>>(ptr<int32_t>(tokens), n, v, d, vocab_offset,
                                                                   ptr<float>(dout), ptr<float>(dweight));
  check_launch("embedding_backward");
}

}  // namespace cs::cuda
