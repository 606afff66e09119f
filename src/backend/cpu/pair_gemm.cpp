// The pair-packed bf16 GEMM (pair_gemm.h). A register tile of 6 rows x 64 columns (24 f32
// accumulators) streams the packed operand once per 6 rows.
#include "backend/cpu/pair_gemm.h"

#include <algorithm>
#include <cstring>

#include "backend/cpu/intrinsics.h"

namespace cs::cpu {

namespace {
#ifdef __AVX512BF16__
// c rows [0, MR) x vectors [0, NV) of 16 columns (the last one's lanes in `last`) (+)= a b.
template <int MR, int NV>
inline void micro(int64_t kp, const Bf16* a, int64_t lda, const Bf16* b, int64_t ldb, float* c, int64_t ldc,
                  __mmask16 last, bool accumulate) {
  __m512 r[MR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v)
      r[i][v] = accumulate ? _mm512_maskz_loadu_ps(v == NV - 1 ? last : __mmask16(0xFFFF), c + i * ldc + 16 * v)
                           : _mm512_setzero_ps();
  for (int64_t p = 0; p < kp; ++p) {
    __m512bh bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = (__m512bh)_mm512_loadu_si512(b + (p * ldb + 16 * v) * 2);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      int32_t pair;
      std::memcpy(&pair, a + i * lda + 2 * p, sizeof pair);
      const __m512bh av = (__m512bh)_mm512_set1_epi32(pair);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) r[i][v] = _mm512_dpbf16_ps(r[i][v], av, bv[v]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v)
      _mm512_mask_storeu_ps(c + i * ldc + 16 * v, v == NV - 1 ? last : __mmask16(0xFFFF), r[i][v]);
}

template <int MR>
inline void micro_rows(int nv, int64_t kp, const Bf16* a, int64_t lda, const Bf16* b, int64_t ldb, float* c,
                       int64_t ldc, __mmask16 last, bool accumulate) {
  switch (nv) {
    case 4: return micro<MR, 4>(kp, a, lda, b, ldb, c, ldc, last, accumulate);
    case 3: return micro<MR, 3>(kp, a, lda, b, ldb, c, ldc, last, accumulate);
    case 2: return micro<MR, 2>(kp, a, lda, b, ldb, c, ldc, last, accumulate);
    default: return micro<MR, 1>(kp, a, lda, b, ldb, c, ldc, last, accumulate);
  }
}
#endif
}  // namespace

void gemm_bf16_pairs_portable(int64_t m, int64_t n, int64_t kp, const Bf16* a, int64_t lda, const Bf16* b,
                              int64_t ldb, float* c, int64_t ldc, bool accumulate) {
  for (int64_t i = 0; i < m; ++i) {
    float* ci = c + i * ldc;
    if (!accumulate) std::fill(ci, ci + n, 0.f);
    for (int64_t p = 0; p < kp; ++p) {
      const float a0 = load(a + i * lda + 2 * p), a1 = load(a + i * lda + 2 * p + 1);
      const Bf16* bp = b + p * ldb * 2;
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) ci[j] += a0 * load(bp + 2 * j) + a1 * load(bp + 2 * j + 1);
    }
  }
}

void gemm_bf16_pairs(int64_t m, int64_t n, int64_t kp, const Bf16* a, int64_t lda, const Bf16* b, int64_t ldb,
                     float* c, int64_t ldc, bool accumulate, Tri tri) {
#ifdef __AVX512BF16__
  constexpr int64_t kMr = 6;
  for (int64_t j = 0; j < n; j += 64)
    for (int64_t i = 0; i < m; i += kMr) {
      const int64_t mr = std::min(kMr, m - i);
      // The block's last row is i + mr - 1: under Columns it needs columns up to that; under
      // Reduction its a row is zero past that column (pair (i + mr - 1) / 2).
      const int64_t ne = tri == Tri::Columns ? std::min(n, i + mr) : n;
      const int64_t kpe = tri == Tri::Reduction ? std::min(kp, (i + mr + 1) / 2) : kp;
      if (ne <= j) continue;
      const int64_t w = std::min<int64_t>(64, ne - j);
      const int nv = int((w + 15) / 16);
      const __mmask16 last = w % 16 ? __mmask16((1u << (w % 16)) - 1) : __mmask16(0xFFFF);
      const Bf16 *ai = a + i * lda, *bj = b + j * 2;
      float* ci = c + i * ldc + j;
      switch (mr) {
        case 6: micro_rows<6>(nv, kpe, ai, lda, bj, ldb, ci, ldc, last, accumulate); break;
        case 5: micro_rows<5>(nv, kpe, ai, lda, bj, ldb, ci, ldc, last, accumulate); break;
        case 4: micro_rows<4>(nv, kpe, ai, lda, bj, ldb, ci, ldc, last, accumulate); break;
        case 3: micro_rows<3>(nv, kpe, ai, lda, bj, ldb, ci, ldc, last, accumulate); break;
        case 2: micro_rows<2>(nv, kpe, ai, lda, bj, ldb, ci, ldc, last, accumulate); break;
        default: micro_rows<1>(nv, kpe, ai, lda, bj, ldb, ci, ldc, last, accumulate); break;
      }
    }
#else
  (void)tri;
  gemm_bf16_pairs_portable(m, n, kp, a, lda, b, ldb, c, ldc, accumulate);
#endif
}

}  // namespace cs::cpu
