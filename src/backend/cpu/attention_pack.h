// The bf16 attention's operand layouts (attention_bf16.cpp): the pair-packed right-hand operand
// of gemm_bf16_pairs built from rows or from columns of a head's bf16 data, and a head
// transposed. Each is a transpose of 32-bit pairs or an interleave of two rows: AVX-512 where the
// build has it (transpose.h), the element loops otherwise (the `_portable` twins, which the tests
// hold the others against).
#pragma once
#include <cstdint>

#include "backend/cpu/bf16.h"

namespace cs::cpu {

// dst[(p * ldb + j) * 2 + e] = src[j * lds + 2p + e]: the rows of src (n x k; k and lds even) as
// the columns of B = src^T; columns [n, ldb) zero.
void pack_nk(const Bf16* src, int64_t lds, int64_t n, int64_t k, int64_t ldb, Bf16* dst);
void pack_nk_portable(const Bf16* src, int64_t lds, int64_t n, int64_t k, int64_t ldb, Bf16* dst);

// dst[(p * ldb + j) * 2 + e] = src[(2p + e) * lds + j]: src (k x n) as B; the odd row past k and
// columns [n, ldb) zero (ldb a multiple of 16). ceil(k / 2) pairs.
void pack_kn(const Bf16* src, int64_t lds, int64_t k, int64_t n, int64_t ldb, Bf16* dst);
void pack_kn_portable(const Bf16* src, int64_t lds, int64_t k, int64_t n, int64_t ldb, Bf16* dst);

// x (T x hd rows, hd even) transposed: dst (hd x tpad), tpad = T rounded up to even, the pad zero.
void transpose_head(const Bf16* x, int64_t t_len, int64_t hd, int64_t tpad, Bf16* dst);
void transpose_head_portable(const Bf16* x, int64_t t_len, int64_t hd, int64_t tpad, Bf16* dst);

}  // namespace cs::cpu
