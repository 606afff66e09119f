// What the flash-attention kernels share: tile sizes, the arguments, the head-dim dispatch, and
// the forward's launcher, used by training (attention.cu, which holds the kernels) and by decoding
// over the KV cache (attention_decode.cu). The forward: one block per (32-query tile, batch x
// head), 8 warps of 4 query rows, an online softmax over 32-key tiles in shared memory (f32
// whatever the storage dtype). Query row r of a head sits at absolute position q_pos0 + r and
// sees the keys j <= its position (and, with segments, only those of its own packed sample).
#pragma once
#include <type_traits>

#include "backend/cuda/attention_args.cuh"
#include "backend/cuda/common.cuh"

namespace cs::cuda {

// Calls fn(std::integral_constant<int, KD>) with KD = head dims per lane (hd <= 32 KD).
template <typename Fn>
void with_head_dim(int hd, Fn&& fn) {
  if (hd <= 32) fn(std::integral_constant<int, 1>{});
  else if (hd <= 64) fn(std::integral_constant<int, 2>{});
  else if (hd <= 128) fn(std::integral_constant<int, 4>{});
  else fn(std::integral_constant<int, 8>{});
}

// Launches the forward over bh heads on the context's stream (attention.cu; instantiated there for
// float, bf16 and f16, so the kernels are compiled once).
template <typename T>
void flash_forward(Ctx& c, const FlashArgs<T>& a, int64_t bh);

}  // namespace cs::cuda
