// Transposes of 32-bit elements for the bf16 attention's operand layouts: a tile of f32, or of
// bf16 pairs (two adjacent bf16 values moved as one 32-bit element). 16 x 16 blocks go through
// AVX-512 registers (16 row loads, 64 shuffles, 16 stores) where the build has it; edges and
// other builds take the element loop. The bf16 attention spent a third of its time outside the
// tile products in scalar transposes before.
#pragma once
#include <cstdint>
#include <cstring>

#include "backend/cpu/intrinsics.h"

namespace cs::cpu {

#ifdef __AVX512F__
// r[i] (16 dwords each) := the transpose of the 16 x 16 block r.
inline void transpose16(__m512i r[16]) {
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  // Per 128-bit lane L: r[4g + k] = rows 4g .. 4g + 3 of column 4L + k.
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  // Gather lane L of the four row groups: r[4L + k] = column 4L + k, all 16 rows.
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0xdd);
    t[i + 8] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0xdd);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0xdd);
    r[i + 4] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0x88);
    r[i + 12] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0xdd);
  }
}
#endif

// dst[j * ldd + i] = src[i * lds + j] for i < rows, j < cols, of 32-bit elements (f32, or bf16
// pairs) moved as raw bits through byte addresses (memcpy and vector loads: no element is read as
// another type); strides in 4-byte elements.
inline void transpose32(const void* src_v, int64_t lds, int64_t rows, int64_t cols, void* dst_v, int64_t ldd) {
  const char* src = static_cast<const char*>(src_v);
  char* dst = static_cast<char*>(dst_v);
  auto s_at = [&](int64_t i, int64_t j) { return src + (i * lds + j) * 4; };
  auto d_at = [&](int64_t j, int64_t i) { return dst + (j * ldd + i) * 4; };
  int64_t i0 = 0;
#ifdef __AVX512F__
  for (; i0 + 16 <= rows; i0 += 16) {
    int64_t j0 = 0;
    for (; j0 + 16 <= cols; j0 += 16) {
      __m512i r[16];
      for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_si512(s_at(i0 + i, j0));
      transpose16(r);
      for (int j = 0; j < 16; ++j) _mm512_storeu_si512(d_at(j0 + j, i0), r[j]);
    }
    for (int64_t i = i0; i < i0 + 16; ++i)
      for (int64_t j = j0; j < cols; ++j) std::memcpy(d_at(j, i), s_at(i, j), 4);
  }
#endif
  for (int64_t i = i0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) std::memcpy(d_at(j, i), s_at(i, j), 4);
}

}  // namespace cs::cpu
