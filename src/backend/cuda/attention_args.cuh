// The flash-attention kernels' tile sizes and arguments, with no CUDA header: the kernels'
// headers (attention_kernels.cuh, attention_tc_kernels.cuh) are also compiled by the host compiler
// for the CPU emulation in tests/cuda_emu/.
#pragma once
#include <cstdint>

// The dynamic shared memory of a tensor-core attention block (the emulation gives each block its own buffer).
#ifndef CS_TC_SHARED
#define CS_TC_SHARED(name) extern __shared__ __align__(128) unsigned char name[]
#endif

namespace cs::cuda {

constexpr int kTile = 32;         // queries and keys per tile (keys: one per lane)
constexpr int kThreads = 256;     // 8 warps
constexpr int kRowsPerWarp = kTile / (kThreads / 32);
constexpr int kMaxHeadDim = 256;  // 8 dims per lane

template <typename T>
struct FlashArgs {
  const T *q, *k, *v;
  T* o;                 // forward output (null in the backward)
  const T* dout;        // backward input (null in the forward)
  float* lse;           // (B*H, tq): written by the forward unless null; read by the backward
  const float* slopes;  // (H) ALiBi slopes or null
  const int32_t* segments;  // (B, tk) packed samples' run indices (segment_runs) or null (training only)
  int64_t tq, tk, q_pos0;   // query rows, keys, the first query's position
  int64_t q_head_stride, kv_head_stride;  // elements between heads (the cache's is Tcap * Hd)
  int hd, heads;
  float scale;
};

}  // namespace cs::cuda
