// The bf16 tile product of the attention kernels: a pair-packed GEMM with f32 accumulation on the
// calling thread. AVX-512 BF16's vdpbf16ps adds a[2p] b[2p] + a[2p+1] b[2p+1] into 16 f32 lanes,
// so the right-hand operand is packed with the pairs of its reduction index adjacent for each
// output column (b[p][j][e] = B(2p + e, j), attention_pack.h) and the left-hand one is read as
// 32-bit pairs straight from its rows.
#pragma once
#include <cstdint>

#include "backend/cpu/bf16.h"

namespace cs::cpu {

// What a causal diagonal tile (rows and columns the same positions) lets the product skip:
//  - Columns: row i of c is needed at columns j <= i only; the others are left unspecified.
//  - Reduction: row i of a is zero past column i, so row i's reduction stops there.
enum class Tri { None, Columns, Reduction };

// c (m x n, row stride ldc) = a b, or += with accumulate. a: bf16 (m x 2 kp), row stride lda
// (even), the pairs (2p, 2p + 1) of a row adjacent. b: packed pairs, b[(p * ldb + j) * 2 + e] =
// B(2p + e, j), for j < n rounded up to 16 (ldb at least that; the padding zero). Products of
// bf16 values summed in f32: vdpbf16ps when this build targets it (__AVX512BF16__), else the
// portable loop (which computes everything `tri` would let it skip).
void gemm_bf16_pairs(int64_t m, int64_t n, int64_t kp, const Bf16* a, int64_t lda, const Bf16* b, int64_t ldb,
                     float* c, int64_t ldc, bool accumulate, Tri tri = Tri::None);
void gemm_bf16_pairs_portable(int64_t m, int64_t n, int64_t kp, const Bf16* a, int64_t lda, const Bf16* b,
                              int64_t ldb, float* c, int64_t ldc, bool accumulate);

}  // namespace cs::cpu
