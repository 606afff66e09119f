// A warp's sum and maximum through shuffles, with no CUDA header (the host emulation of
// tests/cuda_emu/ compiles the kernels that use them).
#pragma once

namespace cs::cuda {

// A warp's sum and maximum (all lanes get the result).
__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

}  // namespace cs::cuda
