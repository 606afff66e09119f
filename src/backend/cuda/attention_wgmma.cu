// The register-resident attention kernels on Hopper's warpgroup MMA (the WgMma engine of
// attention_wgmma.cuh), taken with CS_CUDA_ATTENTION=wgmma on an sm_90 GPU for head dims 64 and
// 128. This file alone is compiled for sm_90a (wgmma exists there only; src/backend/CMakeLists.txt)
// and sm_80, where the kernels' bodies trap and are never launched.
#include <algorithm>

#include "backend/cuda/attention_fa2_launch.cuh"
#include "backend/cuda/attention_tc.cuh"
#include "backend/cuda/attention_wgmma.cuh"

namespace cs::cuda {

using fa2::WgMma;

namespace {
// Writes 1 when the image the GPU runs of this file has wgmma (sm_90a), 0 otherwise.
__global__ void wgmma_probe_kernel(int* out) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  *out = 1;
#else
  *out = 0;
#endif
}
}  // namespace

bool wgmma_attention_available() {
  static const bool ok = [] {
    int dev = 0, major = 0, minor = 0;
    check(cudaGetDevice(&dev), "cudaGetDevice");
    check(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev), "cudaDeviceGetAttribute");
    check(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev), "cudaDeviceGetAttribute");
    if (major != 9 || minor != 0) return false;
    int* d = nullptr;
    int has = 0;
    check(cudaMalloc(&d, sizeof(int)), "wgmma probe (cudaMalloc)");
    CS_LAUNCH(1, 1, 0, cudaStream_t{}, wgmma_probe_kernel)(d);
    // A launch that fails (no image this GPU can load) means no wgmma, and must not be left
    // pending for the next check to blame on another kernel.
    const cudaError_t launched = cudaGetLastError();
    const cudaError_t copied = launched == cudaSuccess ? cudaMemcpy(&has, d, sizeof(int), cudaMemcpyDeviceToHost) : launched;
    cudaFree(d);
    return copied == cudaSuccess && has == 1;
  }();
  return ok;
}

size_t wgmma_attention_smem(int64_t hd) {
  if (hd == 64) return std::max({fa2::forward_smem<64, WgMma>(), fa2::dkdv_smem<64, WgMma>(), fa2::dq_smem<64, WgMma>()});
  if (hd == 128)
    return std::max({fa2::forward_smem<128, WgMma>(), fa2::dkdv_smem<128, WgMma>(), fa2::dq_smem<128, WgMma>()});
  return 0;
}

// The forward: the pipelined kernel of attention_wgmma.cuh (a P V in flight during each softmax).
template <typename T>
void wgmma_forward(Ctx& c, const FlashArgs<T>& a, int64_t bh) {
  const char* what = "attention_forward (tensor cores, wgmma)";
  if (a.hd == 64) return fa2_forward<WgMma, 64>(c, a, bh, what, fa2::wgmma_forward_kernel<T, 64>);
  CS_CHECK(a.hd == 128) << "head dim " << a.hd;
  fa2_forward<WgMma, 128>(c, a, bh, what, fa2::wgmma_forward_kernel<T, 128>);
}

template <typename T>
void wgmma_backward(Ctx& c, const FlashArgs<T>& a, int64_t bh, const float* delta, float* dq, float* dk, float* dv) {
  const char* kv = "attention_backward (tensor cores, wgmma, dk, dv)";
  const char* q = "attention_backward (tensor cores, wgmma, dq)";
  if (a.hd == 64) return fa2_backward<WgMma, 64>(c, a, bh, delta, dq, dk, dv, kv, q);
  CS_CHECK(a.hd == 128) << "head dim " << a.hd;
  fa2_backward<WgMma, 128>(c, a, bh, delta, dq, dk, dv, kv, q);
}

template void wgmma_forward<bf16>(Ctx&, const FlashArgs<bf16>&, int64_t);
template void wgmma_forward<f16>(Ctx&, const FlashArgs<f16>&, int64_t);
template void wgmma_backward<bf16>(Ctx&, const FlashArgs<bf16>&, int64_t, const float*, float*, float*, float*);
template void wgmma_backward<f16>(Ctx&, const FlashArgs<f16>&, int64_t, const float*, float*, float*, float*);

}  // namespace cs::cuda
