// Vocab-parallel cross entropy on the GPU (cpu/cross_entropy.cpp's contract): one block per row;
// the row's maximum, then its sum of exponentials (fixed-order block reductions: the same bits
// every run), the target's logit when this rank holds its column; the combine over the ranks'
// parts; the backward scale * (softmax - onehot) over this rank's columns. The logits are read
// in f32 and never copied: a bf16 / f16 gradient written over the logits' own memory goes through
// f32 staging in the workspace a block of rows at a time (rows [r0, r1) in the half dtype lie within
// f32 rows < r1, all read by then), as on the CPU.
#include "backend/cuda/common.cuh"
#include "backend/cuda/ops.h"

namespace cs::cuda {

namespace {
constexpr int kThreads = 512;

__device__ __forceinline__ int64_t local_column(int32_t target, int64_t off, int64_t v) {
  const int64_t col = int64_t(target) - off;
  return target >= 0 && col >= 0 && col < v ? col : -1;
}

__global__ void ce_forward_kernel(const float* logits, const int32_t* targets, int64_t v, int64_t off, float* lse,
                                  float* target_logit) {
  __shared__ float scratch[32];
  const int64_t i = blockIdx.x;
  const float* z = logits + i * v;
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < v; j += blockDim.x) mx = fmaxf(mx, z[j]);
  mx = block_max(mx, scratch);
  float s = 0.f;
  for (int64_t j = threadIdx.x; j < v; j += blockDim.x) s += __expf(z[j] - mx);
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) {
    lse[i] = mx + logf(s);
    const int64_t col = local_column(targets[i], off, v);
    target_logit[i] = col < 0 ? 0.f : z[col];
  }
}

__global__ void ce_combine_kernel(const float* parts, int64_t p, int64_t n, const float* target_logit,
                                  const int32_t* targets, float* losses, float* lse) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  float l = parts[i];
  if (p > 1) {  // one part is kept as it is (bit-identical to one rank)
    float mx = -INFINITY;
    for (int64_t r = 0; r < p; ++r) mx = fmaxf(mx, parts[r * n + i]);
    double s = 0.0;
    for (int64_t r = 0; r < p; ++r) s += exp(double(parts[r * n + i] - mx));
    l = mx + float(log(s));
  }
  lse[i] = l;
  losses[i] = targets[i] < 0 ? 0.f : l - target_logit[i];
}

// Rows [r0, r0 + gridDim.x): dz[(i - r0) * v + j] = the gradient of row i.
template <typename D>
__global__ void ce_backward_kernel(const float* logits, const float* lse, const int32_t* targets, int64_t v,
                                   int64_t off, float scale, int64_t r0, D* dz) {
  const int64_t i = r0 + blockIdx.x;
  const float* z = logits + i * v;
  D* out = dz + (i - r0) * v;
  const int32_t tgt = targets[i];
  const float l = lse[i];
  const int64_t col = local_column(tgt, off, v);
  for (int64_t j = threadIdx.x; j < v; j += blockDim.x) {
    const float g = tgt < 0 ? 0.f : scale * __expf(z[j] - l) - (j == col ? scale : 0.f);
    st(out + j, g);
  }
}

template <typename D>
__global__ void round_rows_kernel(const float* src, D* dst, int64_t n) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x)
    st(dst + e, src[e]);
}
}  // namespace

void cross_entropy_forward(Ctx& c, const Tensor& logits, const Tensor& targets, int64_t vocab_offset,
                           const Tensor& lse, const Tensor& target_logit) {
  check_f32("cross_entropy_forward", "logits", logits, Device::CUDA);
  check_arg("cross_entropy_forward", "targets", targets, DType::I32, Device::CUDA);
  check_f32_args("cross_entropy_forward", Device::CUDA, {{"lse", &lse}, {"target_logit", &target_logit}});
  const int64_t n = targets.numel(), v = logits.size(-1);
  CS_CHECK(logits.numel() == n * v && lse.numel() == n && target_logit.numel() == n && vocab_offset >= 0);
  if (!n) return;
  ce_forward_kernel<<<unsigned(n), kThreads, 0, stream(c)>>>(ptr<float>(logits), ptr<int32_t>(targets), v,
                                                             vocab_offset, ptr<float>(lse), ptr<float>(target_logit));
  check_launch("cross_entropy_forward");
}

void cross_entropy_combine(Ctx& c, const Tensor& lse_parts, const Tensor& target_logit, const Tensor& targets,
                           const Tensor& losses, const Tensor& lse) {
  check_f32_args("cross_entropy_combine", Device::CUDA,
                 {{"lse_parts", &lse_parts}, {"target_logit", &target_logit}, {"losses", &losses}, {"lse", &lse}});
  check_arg("cross_entropy_combine", "targets", targets, DType::I32, Device::CUDA);
  const int64_t n = targets.numel(), p = n ? lse_parts.numel() / n : 0;
  if (!n) return;
  CS_CHECK(p >= 1 && lse_parts.numel() == p * n && target_logit.numel() == n && losses.numel() == n &&
           lse.numel() == n)
      << lse_parts.shape.str() << " parts of " << n;
  ce_combine_kernel<<<blocks_for(n, 256), 256, 0, stream(c)>>>(ptr<float>(lse_parts), p, n, ptr<float>(target_logit),
                                                               ptr<int32_t>(targets), ptr<float>(losses),
                                                               ptr<float>(lse));
  check_launch("cross_entropy_combine");
}

void cross_entropy_backward(Ctx& c, const Tensor& logits, const Tensor& lse, const Tensor& targets,
                            int64_t vocab_offset, float scale, const Tensor& dlogits) {
  check_f32_args("cross_entropy_backward", Device::CUDA, {{"logits", &logits}, {"lse", &lse}});
  check_arg("cross_entropy_backward", "targets", targets, DType::I32, Device::CUDA);
  check_float("cross_entropy_backward", "dlogits", dlogits, Device::CUDA);
  const int64_t n = targets.numel(), v = logits.size(-1);
  CS_CHECK(dlogits.numel() == n * v && vocab_offset >= 0);
  if (!n || !v) return;
  const float* z = ptr<float>(logits);
  const int32_t* tg = ptr<int32_t>(targets);
  const float* l = ptr<float>(lse);
  const bool aliased = dlogits.data < static_cast<const void*>(z + n * v) &&
                       static_cast<const void*>(z) < static_cast<uint8_t*>(dlogits.data) + dlogits.nbytes();
  if (dlogits.dtype == DType::F32 || !aliased) {  // one pass (f32 in place: each element read, then written)
    with_float(dlogits.dtype, [&](auto td) {
      using D = decltype(td);
      ce_backward_kernel<D><<<unsigned(n), kThreads, 0, stream(c)>>>(z, l, tg, v, vocab_offset, scale, 0,
                                                                     ptr<D>(dlogits));
    });
    check_launch("cross_entropy_backward");
    return;
  }
  const int64_t rows = int64_t(c.workspace.nbytes() / (size_t(v) * sizeof(float)));
  CS_CHECK(rows >= 1) << "a vocabulary slice of " << v << " columns is over the workspace's f32 staging";
  float* staging = ptr<float>(c.workspace);
  with_float(dlogits.dtype, [&](auto td) {
    using D = decltype(td);
    for (int64_t r0 = 0; r0 < n; r0 += rows) {
      const int64_t r1 = std::min(n, r0 + rows);
      ce_backward_kernel<float><<<unsigned(r1 - r0), kThreads, 0, stream(c)>>>(z, l, tg, v, vocab_offset, scale, r0,
                                                                               staging);
      check_launch("cross_entropy_backward");
      round_rows_kernel<D><<<blocks_for((r1 - r0) * v, 256, 8192), 256, 0, stream(c)>>>(
          staging, ptr<D>(dlogits) + r0 * v, (r1 - r0) * v);
      check_launch("cross_entropy_backward");
    }
  });
}

}  // namespace cs::cuda
