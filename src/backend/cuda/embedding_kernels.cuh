// The embedding's scatter-add backward on the GPU, deterministic and parallel over tokens: each
// token's row of this shard becomes a key (the shard's size v for tokens outside it), the (key,
// position) pairs are sorted stably by key (cub::DeviceRadixSort, in embedding.cu), and one block
// per run of equal keys adds the run's gradient rows to its weight row in position order. That is
// the order of a walk over the tokens, so the sums have the bits of the CPU's loop, every run.
// A block stages its run's positions in shared memory, kChunk at a time, so each thread's loads of
// the gradient rows are independent of one another (in flight together), not one dependent
// read-modify-write per token as a thread-per-column walk would be.
// In a header so that tests/cuda_emu/ runs its text on the CPU.
#pragma once
#include <cstdint>

namespace cs::cuda::embed {

constexpr int kThreads = 256;  // a run block's threads (kCols columns each)
constexpr int kChunk = 256;    // run positions staged per pass
constexpr int kCols = 8;       // columns per thread held at once (8 gradient rows' loads in flight)
constexpr int64_t kColsPerBlock = int64_t(kThreads) * kCols;  // a block's slice of the row (blockIdx.y)

// keys[i]: token i's row in the shard [off, off + v), or v (sorted last, skipped); pos[i] = i.
__global__ void keys_kernel(const int32_t* ids, int64_t n, int64_t v, int64_t off, int32_t* keys, int32_t* pos) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = int64_t(ids[i]) - off;
    keys[i] = row >= 0 && row < v ? int32_t(row) : int32_t(v);
    pos[i] = int32_t(i);
  }
}

// keys, pos: sorted by key, positions ascending within a key. Block (s, y) (grid-stride in both)
// takes the run starting at sorted index s, if one does, over column slice y of the row:
// dw[key] += dout[pos] over the run, in order. The slices of a long run (a frequent token) go to
// blocks of their own.
__global__ void __launch_bounds__(kThreads) runs_kernel(const int32_t* keys, const int32_t* pos, int64_t n, int64_t v,
                                                        int64_t d, const float* dout, float* dw) {
  static_assert(kChunk <= kThreads);
  __shared__ int32_t staged[kChunk];
  __shared__ int count;
  for (int64_t s = blockIdx.x; s < n; s += gridDim.x) {
    const int32_t key = keys[s];
    if ((s > 0 && keys[s - 1] == key) || key >= v) continue;  // (block-uniform) not a run's start, or not ours
    float* row = dw + int64_t(key) * d;
    for (int64_t j0 = int64_t(blockIdx.y) * kColsPerBlock; j0 < d; j0 += int64_t(gridDim.y) * kColsPerBlock) {
      float acc[kCols];
#pragma unroll
      for (int c = 0; c < kCols; ++c) {
        const int64_t j = j0 + c * kThreads + threadIdx.x;
        acc[c] = j < d ? row[j] : 0.f;
      }
      for (int64_t t0 = s;; t0 += kChunk) {
        __syncthreads();  // the last chunk's positions and count are read by every thread
        if (threadIdx.x < kChunk) {
          const int64_t t = t0 + threadIdx.x;
          const bool in = t < n && keys[t] == key;
          staged[threadIdx.x] = in ? pos[t] : -1;
          // The run's part of the chunk is a prefix of it: its last thread writes the length.
          if (in && (threadIdx.x == kChunk - 1 || t + 1 >= n || keys[t + 1] != key)) count = int(threadIdx.x) + 1;
          if (threadIdx.x == 0 && !in) count = 0;
        }
        __syncthreads();
        const int len = count;
#pragma unroll 4
        for (int k = 0; k < len; ++k) {
          const float* g = dout + int64_t(staged[k]) * d;
#pragma unroll
          for (int c = 0; c < kCols; ++c) {
            const int64_t j = j0 + c * kThreads + threadIdx.x;
            if (j < d) acc[c] += g[j];
          }
        }
        if (len < kChunk) break;  // (block-uniform) the run ended in this chunk
      }
#pragma unroll
      for (int c = 0; c < kCols; ++c) {
        const int64_t j = j0 + c * kThreads + threadIdx.x;
        if (j < d) row[j] = acc[c];
      }
    }
    // (No barrier before the next run: its first chunk starts with one.)
  }
}

// The bits the radix sort needs for keys 0 .. v.
inline int key_bits(int64_t v) {
  int bits = 1;
  while ((int64_t(1) << bits) <= v) ++bits;
  return bits;
}

}  // namespace cs::cuda::embed
