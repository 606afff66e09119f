// Vocab-parallel token embedding and its scatter-add backward on the GPU (the CPU's contract,
// cpu/embedding.cpp): tokens outside [vocab_offset, vocab_offset + V) give zero rows and no
// gradient. The backward sorts the tokens by row and sums each row's gradients in token order
// (embedding_kernels.cuh): no atomics, the same bits every run. weight: f32|bf16|f16.
#include <cub/device/device_radix_sort.cuh>

#include <limits>

#include "backend/cuda/common.cuh"
#include "backend/cuda/embedding_kernels.cuh"
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
    CS_LAUNCH(unsigned(n), 256, 0, stream(c), embed_kernel<W>)(ptr<int32_t>(tokens), ptr<W>(weight), v, d, vocab_offset,
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
  if (n > std::numeric_limits<int32_t>::max() || v >= std::numeric_limits<int32_t>::max())
    throw Error("embedding_backward: " + std::to_string(n) + " tokens, " + std::to_string(v) +
                " rows: the GPU backward takes fewer than 2^31 of each; use smaller micro-batches");
  OpScratch scratch(c);
  // Keys and positions, before and after the sort: one piece of scratch (a token count past the
  // workspace takes one allocation here and one for the sort's own scratch).
  int32_t* keys = scratch.take<int32_t>(4 * n, "embedding_backward (keys)");
  int32_t* pos = keys + n;
  int32_t* sorted_keys = pos + n;
  int32_t* sorted_pos = sorted_keys + n;
  CS_LAUNCH(blocks_for(n, 256, 4096), 256, 0, stream(c), embed::keys_kernel)(ptr<int32_t>(tokens), n, v, vocab_offset, keys, pos);
  check_launch("embedding_backward (keys)");
  // A stable sort (cub's radix sort is): within a row, the tokens stay in order.
  const int bits = embed::key_bits(v);
  size_t temp_bytes = 0;
  check(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, keys, sorted_keys, pos, sorted_pos, int(n), 0, bits,
                                        stream(c)),
        "embedding_backward (sort size)");
  void* temp = scratch.take<uint8_t>(int64_t(temp_bytes), "embedding_backward (sort scratch)");
  check(cub::DeviceRadixSort::SortPairs(temp, temp_bytes, keys, sorted_keys, pos, sorted_pos, int(n), 0, bits, stream(c)),
        "embedding_backward (sort)");
  const dim3 grid(blocks_for(n, 1), blocks_for(d, int(embed::kColsPerBlock)));
  CS_LAUNCH(grid, embed::kThreads, 0, stream(c), embed::runs_kernel)(
      sorted_keys, sorted_pos, n, v, d, ptr<float>(dout), ptr<float>(dweight));
  check_launch("embedding_backward");
}

}  // namespace cs::cuda
