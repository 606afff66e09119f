// The bf16 attention's operand packing (attention_pack.h).
#include "backend/cpu/attention_pack.h"

#include <algorithm>

#include "backend/cpu/transpose.h"
#include "core/error.h"

namespace cs::cpu {

namespace {
constexpr Bf16 kZero{0};
}  // namespace

void pack_nk_portable(const Bf16* src, int64_t lds, int64_t n, int64_t k, int64_t ldb, Bf16* dst) {
  for (int64_t p = 0; p < k / 2; ++p) {
    Bf16* d = dst + p * ldb * 2;
    for (int64_t j = 0; j < n; ++j) {
      d[2 * j] = src[j * lds + 2 * p];
      d[2 * j + 1] = src[j * lds + 2 * p + 1];
    }
    std::fill(d + 2 * n, d + 2 * ldb, kZero);
  }
}

void pack_nk(const Bf16* src, int64_t lds, int64_t n, int64_t k, int64_t ldb, Bf16* dst) {
  // As 32-bit pairs (a row's elements 2p, 2p + 1): dst (k/2 x ldb) = src (n x k/2)^T.
  transpose32(src, lds / 2, n, k / 2, dst, ldb);
  for (int64_t p = 0; p < k / 2; ++p) std::fill(dst + (p * ldb + n) * 2, dst + (p + 1) * ldb * 2, kZero);
}

void pack_kn_portable(const Bf16* src, int64_t lds, int64_t k, int64_t n, int64_t ldb, Bf16* dst) {
  for (int64_t p = 0; p < (k + 1) / 2; ++p) {
    Bf16* d = dst + p * ldb * 2;
    const Bf16* r0 = src + 2 * p * lds;
    const bool has1 = 2 * p + 1 < k;
    for (int64_t j = 0; j < n; ++j) {
      d[2 * j] = r0[j];
      d[2 * j + 1] = has1 ? r0[lds + j] : kZero;
    }
    std::fill(d + 2 * n, d + 2 * ldb, kZero);
  }
}

void pack_kn(const Bf16* src, int64_t lds, int64_t k, int64_t n, int64_t ldb, Bf16* dst) {
  CS_DCHECK(ldb % 16 == 0 && ldb >= n) << ldb << " " << n;  // whole 16-column vectors are stored
#ifdef __AVX512BW__
  // 32 columns of rows 2p and 2p + 1 interleaved by two 16-bit permutes: out[2j + e] = row e [j].
  alignas(64) static const uint16_t lo_idx[32] = {0, 32, 1, 33, 2, 34, 3, 35, 4, 36, 5, 37, 6, 38, 7, 39,
                                                  8, 40, 9, 41, 10, 42, 11, 43, 12, 44, 13, 45, 14, 46, 15, 47};
  const __m512i lo = _mm512_load_si512(lo_idx), hi = _mm512_add_epi16(lo, _mm512_set1_epi16(16));
  for (int64_t p = 0; p < (k + 1) / 2; ++p) {
    Bf16* d = dst + p * ldb * 2;
    const Bf16* r0 = src + 2 * p * lds;
    const bool has1 = 2 * p + 1 < k;
    for (int64_t j = 0; j < ldb; j += 32) {
      const __mmask32 in = j + 32 <= n ? ~__mmask32(0) : j < n ? (__mmask32(1) << (n - j)) - 1 : 0;
      const __m512i a = _mm512_maskz_loadu_epi16(in, r0 + j);
      const __m512i b = has1 ? _mm512_maskz_loadu_epi16(in, r0 + lds + j) : _mm512_setzero_si512();
      _mm512_storeu_si512(d + 2 * j, _mm512_permutex2var_epi16(a, lo, b));
      if (j + 16 < ldb) _mm512_storeu_si512(d + 2 * j + 32, _mm512_permutex2var_epi16(a, hi, b));
    }
  }
#else
  pack_kn_portable(src, lds, k, n, ldb, dst);
#endif
}

void transpose_head_portable(const Bf16* x, int64_t t_len, int64_t hd, int64_t tpad, Bf16* dst) {
  for (int64_t d = 0; d < hd; ++d) {
    Bf16* row = dst + d * tpad;
    for (int64_t i = 0; i < t_len; ++i) row[i] = x[i * hd + d];
    if (tpad > t_len) row[t_len] = kZero;
  }
}

void transpose_head(const Bf16* x, int64_t t_len, int64_t hd, int64_t tpad, Bf16* dst) {
  int64_t i0 = 0;
#ifdef __AVX512BW__
  // 16 rows x 16 pairs as a 32-bit transpose; each transposed pair vector holds columns 2p (low
  // halves) and 2p + 1 (high halves) of the 16 rows, split by vpmovdw.
  for (; i0 + 16 <= t_len; i0 += 16) {
    int64_t p0 = 0;
    for (; 2 * (p0 + 16) <= hd; p0 += 16) {
      __m512i r[16];
      for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_si512(x + (i0 + i) * hd + 2 * p0);
      transpose16(r);
      for (int q = 0; q < 16; ++q) {
        const int64_t d = 2 * (p0 + q);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + d * tpad + i0), _mm512_cvtepi32_epi16(r[q]));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + (d + 1) * tpad + i0),
                            _mm512_cvtepi32_epi16(_mm512_srli_epi32(r[q], 16)));
      }
    }
    for (int64_t d = 2 * p0; d < hd; ++d)
      for (int64_t i = i0; i < i0 + 16; ++i) dst[d * tpad + i] = x[i * hd + d];
  }
#endif
  for (int64_t d = 0; d < hd; ++d) {
    for (int64_t i = i0; i < t_len; ++i) dst[d * tpad + i] = x[i * hd + d];
    if (tpad > t_len) dst[d * tpad + t_len] = kZero;
  }
}

}  // namespace cs::cpu
