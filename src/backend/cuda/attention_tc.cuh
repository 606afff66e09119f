// The tensor-core flash attention (attention_tc.cu): bf16 / f16, head dims 32, 64 and 128. The
// portable kernels (attention.cu) take everything else (f32, other head dims, decoding), and all
// of it when CS_CUDA_ATTENTION=portable is set (a switch for comparing the two on a GPU).
#pragma once
#include "backend/cuda/attention.cuh"

namespace cs::cuda {

// Whether attention on q of this dtype and head dim runs on tensor cores.
bool tensor_core_attention(DType dtype, int64_t hd);

// The forward over bh heads (training: q_pos0 0, lse written).
template <typename T>
void tc_forward(Ctx& c, const FlashArgs<T>& a, int64_t bh);
// dq, dk, dv (f32, overwritten) from delta[i] = sum_d dO[i, d] O[i, d].
template <typename T>
void tc_backward(Ctx& c, const FlashArgs<T>& a, int64_t bh, const float* delta, float* dq, float* dk, float* dv);

// The same kernels on Hopper's warpgroup MMA (attention_wgmma.cu, compiled for sm_90a), taken with
// CS_CUDA_ATTENTION=wgmma: whether this GPU runs them (compute capability 9.0 and a build with
// sm_90a), their largest shared memory at head dim hd (64 or 128; 0 for others), and the launches.
bool wgmma_attention_available();
size_t wgmma_attention_smem(int64_t hd);
template <typename T>
void wgmma_forward(Ctx& c, const FlashArgs<T>& a, int64_t bh);
template <typename T>
void wgmma_backward(Ctx& c, const FlashArgs<T>& a, int64_t bh, const float* delta, float* dq, float* dk, float* dv);

}  // namespace cs::cuda
