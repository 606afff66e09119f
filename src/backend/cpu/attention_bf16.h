// The bf16 attention (attention_bf16.cpp): the flash loops of attention_flash.h with bf16 tile
// products, f32 accumulation, for --bf16's q, k, v (the ops in attention.cpp dispatch here by
// dtype). Also the tile product itself, exposed for its test.
#pragma once
#include <cstdint>

#include "backend/cpu/attention_flash.h"
#include "backend/cpu/bf16.h"

namespace cs::cpu {

// Pair-packed bf16 GEMM on the calling thread: c (m x n, row stride ldc) = a b, or += with
// accumulate. a: bf16 (m x 2 kp), row stride lda (even), the pairs (2p, 2p + 1) of a row adjacent.
// b: packed pairs, b[(p * ldb + j) * 2 + e] = B(2p + e, j), for j < n rounded up to 16 (ldb at
// least that; the padding zero). Products of bf16 values summed in f32: AVX-512 BF16's vdpbf16ps
// when this build targets it (__AVX512BF16__), else the portable loop below.
void gemm_bf16_pairs(int64_t m, int64_t n, int64_t kp, const Bf16* a, int64_t lda, const Bf16* b, int64_t ldb,
                     float* c, int64_t ldc, bool accumulate);
void gemm_bf16_pairs_portable(int64_t m, int64_t n, int64_t kp, const Bf16* a, int64_t lda, const Bf16* b,
                              int64_t ldb, float* c, int64_t ldc, bool accumulate);

// The ops' bf16 bodies (arguments checked by the callers): Hd even.
void attention_forward_bf16(const flash::Dims& dm, const Bf16* q, const Bf16* k, const Bf16* v, const float* slopes,
                            const int32_t* starts, Bf16* o, float* lse);
void attention_backward_bf16(const flash::Dims& dm, const Bf16* q, const Bf16* k, const Bf16* v,
                             const float* slopes, const int32_t* starts, const Bf16* o, const float* lse,
                             const Bf16* dout, float* dq, float* dk, float* dv);

}  // namespace cs::cpu
