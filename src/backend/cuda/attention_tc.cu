// Flash attention on tensor cores: bf16 / f16 q, k, v with head dim 32, 64 or 128 (Baichuan's is
// 128), every tile product through nvcuda::wmma 16x16x16 fragments with f32 accumulation (mma.sync
// on sm_80 and sm_90). The same loops and masks as the portable kernels (attention.cu), the same
// results up to rounding: P and dS (scaled) are rounded to the storage dtype before their
// products, as FlashAttention does (the CPU's bf16 kernel rounds the same two; it sums f32 P where
// this sums the rounded P, a difference of order 2^-9).
//
// Tiles of 64 queries x 64 keys, 4 warps of 16 rows. The softmax, its statistics, masks and the
// rescaling of the output run on f32 copies in shared memory (a wmma fragment's element-to-row map
// is unspecified, so rows are only touched in memory). Forward: O kept in shared memory, rescaled
// per row, P V accumulated into it. Backward, deterministic without atomics as the portable one:
// per key tile, dV += P^T dO and dK += dS^T Q in fragments held across the query tiles; per query
// tile, dQ += dS K in fragments across the key tiles.
#include <algorithm>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "backend/cuda/attention_tc.cuh"
#include "backend/cuda/attention_tc_kernels.cuh"

namespace cs::cuda {

namespace {
using namespace tc;

template <typename Fn>
bool with_tc_head_dim(int hd, Fn&& fn) {
  switch (hd) {
    case 32: fn(std::integral_constant<int, 32>{}); return true;
    case 64: fn(std::integral_constant<int, 64>{}); return true;
    case 128: fn(std::integral_constant<int, 128>{}); return true;
    default: return false;
  }
}

template <typename K>
void set_smem(K kernel, size_t bytes, const char* op) {
  check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)), op);
}
}  // namespace

bool tensor_core_attention(DType dtype, int64_t hd) {
  static const bool off = [] {
    const char* v = std::getenv("CS_CUDA_ATTENTION");
    return v && std::string(v) == "portable";
  }();
  if (off || (dtype != DType::BF16 && dtype != DType::F16)) return false;
  // The largest block of the three kernels must fit the GPU's shared memory per block (head dim
  // 128 needs 110 KB: A100 and H100 have it, sm_86 / sm_89 GPUs do not and take the portable path).
  static const int optin = [] {
    int dev = 0, bytes = 0;
    check(cudaGetDevice(&dev), "cudaGetDevice");
    check(cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev), "cudaDeviceGetAttribute");
    return bytes;
  }();
  size_t need = 0;
  if (!with_tc_head_dim(int(hd), [&](auto h) {
        constexpr int HD = decltype(h)::value;
        need = std::max({forward_smem<HD>(), dkdv_smem<HD>(), dq_smem<HD>()});
      }))
    return false;
  return need <= size_t(optin);
}

template <typename T>
void tc_forward(Ctx& c, const FlashArgs<T>& a, int64_t bh) {
  const dim3 grid(unsigned(bh), unsigned((a.tq + kB - 1) / kB));
  const bool ok = with_tc_head_dim(a.hd, [&](auto hd) {
    constexpr int HD = decltype(hd)::value;
    set_smem(tc_forward_kernel<T, HD>, forward_smem<HD>(), "attention_forward (shared memory)");
    tc_forward_kernel<T, HD><<<grid, kTcThreads, forward_smem<HD>(), stream(c)>>>(a);
  });
  CS_CHECK(ok) << "head dim " << a.hd;
  check_launch("attention_forward (tensor cores)");
}

template <typename T>
void tc_backward(Ctx& c, const FlashArgs<T>& a, int64_t bh, const float* delta, float* dq, float* dk, float* dv) {
  const dim3 grid(unsigned(bh), unsigned((a.tk + kB - 1) / kB));
  const bool ok = with_tc_head_dim(a.hd, [&](auto hd) {
    constexpr int HD = decltype(hd)::value;
    set_smem(tc_dkdv_kernel<T, HD>, dkdv_smem<HD>(), "attention_backward (shared memory)");
    set_smem(tc_dq_kernel<T, HD>, dq_smem<HD>(), "attention_backward (shared memory)");
    tc_dkdv_kernel<T, HD><<<grid, kTcThreads, dkdv_smem<HD>(), stream(c)>>>(a, delta, dk, dv);
    check_launch("attention_backward (tensor cores, dk, dv)");
    const dim3 qgrid(unsigned(bh), unsigned((a.tq + kB - 1) / kB));  // query tiles
    tc_dq_kernel<T, HD><<<qgrid, kTcThreads, dq_smem<HD>(), stream(c)>>>(a, delta, dq);
    check_launch("attention_backward (tensor cores, dq)");
  });
  CS_CHECK(ok) << "head dim " << a.hd;
}

template void tc_forward<bf16>(Ctx&, const FlashArgs<bf16>&, int64_t);
template void tc_forward<f16>(Ctx&, const FlashArgs<f16>&, int64_t);
template void tc_backward<bf16>(Ctx&, const FlashArgs<bf16>&, int64_t, const float*, float*, float*, float*);
template void tc_backward<f16>(Ctx&, const FlashArgs<f16>&, int64_t, const float*, float*, float*, float*);

}  // namespace cs::cuda
