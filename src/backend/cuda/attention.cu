// Flash attention on the GPU, forward and backward (Dao et al. 2022, FlashAttention-2's loop
// order), causal, ALiBi and packed samples, with the CPU kernel's contract (backend.h): no (T, T)
// matrix, lse saved for the backward, q, k, v, o in f32, bf16 or f16 with every product
// accumulated in f32.
//
// bf16 / f16 with head dim 32, 64 or 128 runs on tensor cores (attention_tc.cu); this file holds
// the portable path for the rest (sm_80+; head dims up to 256 on A100 / H100, up to 128 on GPUs with
// 99 KB of shared memory per block such as sm_86 / sm_89): tiles of 32 queries x 32
// keys in shared memory, a warp per 4 query rows, lane j holding key j of the tile's scores and
// head dims lane + 32k of the output. The backward is deterministic without atomics: one kernel
// per key tile accumulates dK and dV over the query tiles, another per query tile accumulates dQ
// over the key tiles (the scores are recomputed in both). The decode op (attention_decode.cu) runs
// the same forward kernel on the KV cache.
#include <cub/block/block_scan.cuh>

#include <type_traits>

#include "backend/cuda/attention_kernels.cuh"
#include "backend/cuda/attention_tc.cuh"
#include "backend/cuda/ops.h"

namespace cs::cuda {

namespace {
using namespace portable;

// runs[b, t] = the index of the run of equal ids position t belongs to in its sequence: packed
// samples are runs (backend.h), and a later run may repeat an earlier run's id, so the kernels
// compare run indices, never the ids themselves. One block per sequence: each thread counts the
// run boundaries of a chunk of positions, a block scan gives every chunk its first run index.
__global__ void __launch_bounds__(1024) segment_runs_kernel(const int32_t* seg, int64_t t_len, int32_t* runs) {
  using Scan = cub::BlockScan<int, 1024>;
  __shared__ typename Scan::TempStorage tmp;
  const int32_t* s = seg + int64_t(blockIdx.x) * t_len;
  int32_t* r = runs + int64_t(blockIdx.x) * t_len;
  const int64_t per = (t_len + 1023) / 1024, t0 = threadIdx.x * per, t1 = min(t_len, t0 + per);
  int boundaries = 0;
  for (int64_t t = t0; t < t1; ++t) boundaries += t > 0 && s[t] != s[t - 1];
  int run = 0;
  Scan(tmp).ExclusiveSum(boundaries, run);
  for (int64_t t = t0; t < t1; ++t) {
    run += t > 0 && s[t] != s[t - 1];
    r[t] = run;
  }
}

// The run indices of segments (B, T), in scratch; null when there are no segments.
const int32_t* segment_runs(Ctx& c, const Tensor& segments, int64_t b, int64_t t, OpScratch& scratch) {
  if (!segments.numel()) return nullptr;
  int32_t* runs = scratch.take<int32_t>(b * t, "attention (segment runs)");
  CS_LAUNCH(unsigned(b), 1024, 0, stream(c), segment_runs_kernel)(ptr<int32_t>(segments), t, runs);
  check_launch("attention (segment runs)");
  return runs;
}

int64_t check_dims(const char* op, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& slopes,
                   const Tensor& segments, std::initializer_list<NamedArg> same_as_q) {
  check_float(op, "q", q, Device::CUDA);
  check_arg(op, "k", k, q.dtype, Device::CUDA);
  check_arg(op, "v", v, q.dtype, Device::CUDA);
  for (const NamedArg& a : same_as_q) check_arg(op, a.name, *a.tensor, q.dtype, Device::CUDA);
  if (slopes.numel()) check_f32(op, "slopes", slopes, Device::CUDA);
  CS_CHECK(q.ndim() == 4 && q.shape == k.shape && q.shape == v.shape) << q.shape.str() << k.shape.str() << v.shape.str();
  CS_CHECK(slopes.numel() == 0 || slopes.numel() == q.size(1)) << slopes.shape.str();
  if (segments.numel()) {
    check_arg(op, "segments", segments, DType::I32, Device::CUDA);
    CS_CHECK(segments.numel() == q.size(0) * q.size(2)) << segments.shape.str() << q.shape.str();
  }
  const int64_t hd = q.size(3);
  if (q.dtype != DType::F32 && hd % 2)
    throw Error(str("[", op, "] q ", q.shape.str(), ": ", q.dtype == DType::BF16 ? "bf16" : "f16",
                    " attention multiplies pairs of head-dim elements: expected an even head dim, got ", hd,
                    ". Hint: train this model without --", q.dtype == DType::BF16 ? "bf16" : "fp16"));
  if (hd > kMaxHeadDim)
    throw Error(str("[", op, "] q ", q.shape.str(), ": head dim ", hd, " is over the CUDA kernel's ", kMaxHeadDim));
  return hd;
}
}  // namespace

void attention_forward(Ctx& c, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& slopes,
                       const Tensor& segments, const Tensor& o, const Tensor& lse) {
  check_dims("attention_forward", q, k, v, slopes, segments, {{"o", &o}});
  check_f32("attention_forward", "lse", lse, Device::CUDA);
  const int64_t b = q.size(0), h = q.size(1), t = q.size(2), hd = q.size(3);
  CS_CHECK(o.shape == q.shape && lse.numel() == b * h * t);
  if (!q.numel()) return;
  OpScratch scratch(c);
  const int32_t* runs = segment_runs(c, segments, b, t, scratch);
  with_float(q.dtype, [&](auto tt) {
    using T = decltype(tt);
    FlashArgs<T> a{ptr<T>(q), ptr<T>(k), ptr<T>(v), ptr<T>(o), nullptr, ptr<float>(lse),
                   slopes.numel() ? ptr<float>(slopes) : nullptr, runs,
                   t, t, 0, t * hd, t * hd, int(hd), int(h), 1.f / sqrtf(float(hd))};
    if constexpr (!std::is_same_v<T, float>) {
      if (tensor_core_attention(q.dtype, hd)) return tc_forward(c, a, b * h);
    }
    flash_forward(c, a, b * h);
  });
}

void attention_backward(Ctx& c, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& slopes,
                        const Tensor& segments, const Tensor& o, const Tensor& lse, const Tensor& dout,
                        const Tensor& dq, const Tensor& dk, const Tensor& dv) {
  check_dims("attention_backward", q, k, v, slopes, segments, {{"o", &o}, {"dout", &dout}});
  check_f32_args("attention_backward", Device::CUDA, {{"lse", &lse}, {"dq", &dq}, {"dk", &dk}, {"dv", &dv}});
  const int64_t b = q.size(0), h = q.size(1), t = q.size(2), hd = q.size(3);
  CS_CHECK(o.shape == q.shape && dout.shape == q.shape && dq.shape == q.shape && dk.shape == q.shape &&
           dv.shape == q.shape && lse.numel() == b * h * t);
  if (!q.numel()) return;
  const int64_t rows = b * h * t;
  OpScratch scratch(c);
  float* delta = scratch.take<float>(rows, "attention_backward (delta)");
  const int32_t* runs = segment_runs(c, segments, b, t, scratch);
  with_float(q.dtype, [&](auto tt) {
    using T = decltype(tt);
    CS_LAUNCH(blocks_for(rows, 8, 1 << 30), 256, 0, stream(c), attention_delta_kernel<T>)(ptr<T>(o), ptr<T>(dout), rows, hd,
                                                                                   delta);
    check_launch("attention_backward (delta)");
    FlashArgs<T> a{ptr<T>(q), ptr<T>(k), ptr<T>(v), nullptr, ptr<T>(dout), ptr<float>(lse),
                   slopes.numel() ? ptr<float>(slopes) : nullptr, runs,
                   t, t, 0, t * hd, t * hd, int(hd), int(h), 1.f / sqrtf(float(hd))};
    if constexpr (!std::is_same_v<T, float>) {
      if (tensor_core_attention(q.dtype, hd))
        return tc_backward(c, a, b * h, delta, ptr<float>(dq), ptr<float>(dk), ptr<float>(dv));
    }
    const dim3 grid(unsigned(b * h), unsigned((t + kTile - 1) / kTile));  // bh on x: no 65535 limit
    const size_t dkdv_smem = dkdv_smem_bytes(int(hd)), dq_smem = dq_smem_bytes(int(hd));
    with_head_dim(int(hd), [&](auto kd) {
      constexpr int KD = decltype(kd)::value;
      auto dkdv = attention_dkdv_kernel<T, KD>;
      auto dqk = attention_dq_kernel<T, KD>;
      check(cudaFuncSetAttribute(dkdv, cudaFuncAttributeMaxDynamicSharedMemorySize, int(dkdv_smem)),
            "attention_backward (shared memory)");
      check(cudaFuncSetAttribute(dqk, cudaFuncAttributeMaxDynamicSharedMemorySize, int(dq_smem)),
            "attention_backward (shared memory)");
      CS_LAUNCH(grid, kThreads, dkdv_smem, stream(c), dkdv)(a, delta, ptr<float>(dk), ptr<float>(dv));
      check_launch("attention_backward (dk, dv)");
      CS_LAUNCH(grid, kThreads, dq_smem, stream(c), dqk)(a, delta, ptr<float>(dq));
      check_launch("attention_backward (dq)");
    });
  });
}

template <typename T>
void flash_forward(Ctx& c, const FlashArgs<T>& a, int64_t bh) {
  const dim3 grid(unsigned(bh), unsigned((a.tq + kTile - 1) / kTile));  // bh on x: no 65535 limit
  const size_t smem = forward_smem_bytes(a.hd);
  with_head_dim(a.hd, [&](auto kd) {
    constexpr int KD = decltype(kd)::value;
    auto kernel = flash_forward_kernel<T, KD>;
    check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)),
          "attention_forward (shared memory)");
    CS_LAUNCH(grid, kThreads, smem, stream(c), kernel)(a);
    check_launch("attention_forward");
  });
}

template void flash_forward<float>(Ctx&, const FlashArgs<float>&, int64_t);
template void flash_forward<bf16>(Ctx&, const FlashArgs<bf16>&, int64_t);
template void flash_forward<f16>(Ctx&, const FlashArgs<f16>&, int64_t);

}  // namespace cs::cuda
