// Flash attention on tensor cores: bf16 / f16 q, k, v with head dim 32, 64 or 128 (Baichuan's is
// 128), with f32 accumulation. Two sets of kernels, forward and backward:
//  - the register-resident ones (attention_mma_kernels.cuh, attention_mma_backward.cuh,
//    FlashAttention-2's design: mma.sync m16n8k16 with known fragment layouts, so scores, P, dS
//    and the accumulators stay in registers; the streamed tiles double-buffered through
//    cp.async), taken by default when q, k, v (and o, dO) start on 16 bytes; with
//    CS_CUDA_ATTENTION=wgmma on an sm_90 GPU the same kernels on warpgroup MMA (attention_wgmma.cu);
//  - the wmma ones (attention_tc_kernels.cuh: nvcuda::wmma 16x16x16, whose fragment layout is
//    unspecified, so the softmax and the rescaling go through shared memory), taken otherwise or
//    with CS_CUDA_ATTENTION=wmma.
// The same loops and masks as the portable kernels (attention.cu),
// the same results up to rounding: P and dS (scaled) are rounded to the storage dtype before
// their products, as FlashAttention does (the CPU's bf16 kernel rounds the same two; it sums f32 P
// where these sum the rounded P, a difference of order 2^-9).
//
// wmma tiles: 64 queries x 64 keys, 4 warps of 16 rows. Backward, deterministic without atomics
// as the portable one: per key tile, dV += P^T dO and dK += dS^T Q in fragments held across the
// query tiles; per query tile, dQ += dS K in fragments across the key tiles.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "backend/cuda/attention_fa2_launch.cuh"
#include "backend/cuda/attention_tc.cuh"
#include "backend/cuda/attention_tc_kernels.cuh"
#include "backend/cuda/vec.cuh"

namespace cs::cuda {

namespace {
using namespace tc;

// CS_CUDA_ATTENTION: unset (the default choice), "wgmma", "wmma" or "portable".
const std::string& attention_choice() {
  static const std::string v = [] {
    const char* e = std::getenv("CS_CUDA_ATTENTION");
    const std::string s = e ? e : "";
    if (!s.empty() && s != "wgmma" && s != "wmma" && s != "portable")
      throw UsageError("CS_CUDA_ATTENTION=" + s + ": expected wgmma, wmma or portable (or unset for the default kernels)");
    return s;
  }();
  return v;
}

// CS_CUDA_ATTENTION=wgmma on head dims 64 and 128 (32 keeps mma.sync).
bool wgmma_kernels(int64_t hd) {
  if (attention_choice() != "wgmma" || (hd != 64 && hd != 128)) return false;
  if (!wgmma_attention_available())
    throw Error("CS_CUDA_ATTENTION=wgmma: the warpgroup-MMA attention needs an sm_90 GPU (H100, H200); unset it on this GPU");
  return true;
}

// The register-resident kernels copy rows in 16-byte pieces: every head's rows must start on 16 bytes.
template <typename T>
bool mma_kernels(const FlashArgs<T>& a) {
  if (attention_choice() == "wmma") return false;
  const bool ok = vec::aligned16(a.q, a.k, a.v, a.dout) &&  // (dout: null in the forward)
                  a.q_head_stride % 8 == 0 && a.kv_head_stride % 8 == 0 && a.hd % 8 == 0;
  // A user who asked for the warpgroup-MMA kernels is told once when a call cannot take them.
  static bool told = false;
  if (!ok && !told && attention_choice() == "wgmma") {
    told = true;
    std::fputs("warning: CS_CUDA_ATTENTION=wgmma: q, k, v (or dO) of an attention call do not start every "
               "head on 16 bytes; such calls take the wmma kernels\n", stderr);
  }
  return ok;
}
}  // namespace

bool tensor_core_attention(DType dtype, int64_t hd) {
  if (attention_choice() == "portable" || (dtype != DType::BF16 && dtype != DType::F16)) return false;
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
        need = std::max({forward_smem<HD>(), dkdv_smem<HD>(), dq_smem<HD>(), fa2::forward_smem<HD>(),
                         fa2::dkdv_smem<HD>(), fa2::dq_smem<HD>(),
                         attention_choice() == "wgmma" ? wgmma_attention_smem(HD) : size_t(0)});
      }))
    return false;
  return need <= size_t(optin);
}

template <typename T>
void tc_forward(Ctx& c, const FlashArgs<T>& a, int64_t bh) {
  if (mma_kernels(a)) {
    if (wgmma_kernels(a.hd)) return wgmma_forward(c, a, bh);
    const bool ok = with_tc_head_dim(a.hd, [&](auto hd) {
      fa2_forward<fa2::SyncMma, decltype(hd)::value>(c, a, bh, "attention_forward (tensor cores, mma)");
    });
    CS_CHECK(ok) << "head dim " << a.hd;
    return;
  }
  const dim3 grid(unsigned(bh), unsigned((a.tq + kB - 1) / kB));
  const bool ok = with_tc_head_dim(a.hd, [&](auto hd) {
    constexpr int HD = decltype(hd)::value;
    set_smem(tc_forward_kernel<T, HD>, forward_smem<HD>(), "attention_forward (shared memory)");
    CS_LAUNCH(grid, kTcThreads, forward_smem<HD>(), stream(c), tc_forward_kernel<T, HD>)(a);
  });
  CS_CHECK(ok) << "head dim " << a.hd;
  check_launch("attention_forward (tensor cores)");
}

template <typename T>
void tc_backward(Ctx& c, const FlashArgs<T>& a, int64_t bh, const float* delta, float* dq, float* dk, float* dv) {
  // The backward kernels take the training layout: queries and keys the same positions from 0.
  CS_CHECK(a.q_pos0 == 0 && a.tq == a.tk) << a.q_pos0 << " " << a.tq << " " << a.tk;
  if (mma_kernels(a)) {
    if (wgmma_kernels(a.hd)) return wgmma_backward(c, a, bh, delta, dq, dk, dv);
    const bool ok = with_tc_head_dim(a.hd, [&](auto hd) {
      fa2_backward<fa2::SyncMma, decltype(hd)::value>(c, a, bh, delta, dq, dk, dv,
                                                      "attention_backward (tensor cores, mma, dk, dv)",
                                                      "attention_backward (tensor cores, mma, dq)");
    });
    CS_CHECK(ok) << "head dim " << a.hd;
    return;
  }
  const dim3 grid(unsigned(bh), unsigned((a.tk + kB - 1) / kB));
  const bool ok = with_tc_head_dim(a.hd, [&](auto hd) {
    constexpr int HD = decltype(hd)::value;
    set_smem(tc_dkdv_kernel<T, HD>, dkdv_smem<HD>(), "attention_backward (shared memory)");
    set_smem(tc_dq_kernel<T, HD>, dq_smem<HD>(), "attention_backward (shared memory)");
    CS_LAUNCH(grid, kTcThreads, dkdv_smem<HD>(), stream(c), tc_dkdv_kernel<T, HD>)(a, delta, dk, dv);
    check_launch("attention_backward (tensor cores, dk, dv)");
    const dim3 qgrid(unsigned(bh), unsigned((a.tq + kB - 1) / kB));  // query tiles
    CS_LAUNCH(qgrid, kTcThreads, dq_smem<HD>(), stream(c), tc_dq_kernel<T, HD>)(a, delta, dq);
    check_launch("attention_backward (tensor cores, dq)");
  });
  CS_CHECK(ok) << "head dim " << a.hd;
}

template void tc_forward<bf16>(Ctx&, const FlashArgs<bf16>&, int64_t);
template void tc_forward<f16>(Ctx&, const FlashArgs<f16>&, int64_t);
template void tc_backward<bf16>(Ctx&, const FlashArgs<bf16>&, int64_t, const float*, float*, float*, float*);
template void tc_backward<f16>(Ctx&, const FlashArgs<f16>&, int64_t, const float*, float*, float*, float*);

}  // namespace cs::cuda
