// Launching the register-resident attention kernels (attention_mma_kernels.cuh,
// attention_mma_backward.cuh) with one engine, SyncMma (attention_tc.cu) or WgMma
// (attention_wgmma.cu): grids, shared-memory sizes, the head-dim dispatch.
#pragma once
#include <type_traits>

#include "backend/cuda/attention_mma_backward.cuh"
#include "backend/cuda/common.cuh"

namespace cs::cuda {

// Calls fn(std::integral_constant<int, HD>) for a head dim the tensor-core kernels take (32, 64,
// 128); false for any other.
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

// The forward over bh heads on engine E with head dim HD: fa2_forward_kernel, or another forward
// kernel on E's blocks (WgMma's pipelined one).
template <class E, int HD, typename T>
void fa2_forward(Ctx& c, const FlashArgs<T>& a, int64_t bh, const char* what,
                 void (*kernel)(FlashArgs<T>) = fa2::fa2_forward_kernel<T, HD, E>) {
  const dim3 grid(unsigned(bh), unsigned((a.tq + E::kBlockRows - 1) / E::kBlockRows));
  constexpr size_t smem = fa2::forward_smem<HD, E>();
  set_smem(kernel, smem, "attention_forward (shared memory)");
  CS_LAUNCH(grid, E::kThreads, smem, stream(c), kernel)(a);
  check_launch(what);
}

// The backward (training's layout: q_pos0 0, tq == tk): dK, dV per key tile, then dQ per query tile.
template <class E, int HD, typename T>
void fa2_backward(Ctx& c, const FlashArgs<T>& a, int64_t bh, const float* delta, float* dq, float* dk, float* dv,
                  const char* what_dkdv, const char* what_dq) {
  const dim3 kgrid(unsigned(bh), unsigned((a.tk + E::kBlockRows - 1) / E::kBlockRows));  // key blocks
  const dim3 qgrid(unsigned(bh), unsigned((a.tq + E::kBlockRows - 1) / E::kBlockRows));  // query blocks
  constexpr size_t kv_smem = fa2::dkdv_smem<HD, E>(), q_smem = fa2::dq_smem<HD, E>();
  set_smem(fa2::fa2_dkdv_kernel<T, HD, E>, kv_smem, "attention_backward (shared memory)");
  set_smem(fa2::fa2_dq_kernel<T, HD, E>, q_smem, "attention_backward (shared memory)");
  CS_LAUNCH(kgrid, E::kThreads, kv_smem, stream(c), fa2::fa2_dkdv_kernel<T, HD, E>)(a, delta, dk, dv);
  check_launch(what_dkdv);
  CS_LAUNCH(qgrid, E::kThreads, q_smem, stream(c), fa2::fa2_dq_kernel<T, HD, E>)(a, delta, dq);
  check_launch(what_dq);
}

}  // namespace cs::cuda
