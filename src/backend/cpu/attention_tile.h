// The element-wise work on one tile of the flash loops (attention_flash.h), between its products:
// the scores' scale, ALiBi bias and masks, the online softmax of the forward, and the backward's
// P = exp(score - lse) and dS = P (dP - D) scale. Each is one pass over the tile: a row's 64
// columns stay in four AVX-512 registers from the scores to the stored P or dS, written straight
// in the form the next product reads (f32 rows, bf16 rows, or bf16 rows paired for the packed
// right-hand operand). Before, these were four to six passes (mask, max, exp, convert) and took
// as long as the tile products at head dim 64.
//
// Each function has a portable twin (`_portable`: the plain loops, the same formulas; also the
// path of builds without AVX-512) that the tests hold the vector one against.
//
// Tiles: s, dp are rows x kBk f32 (columns [0, cols) meaningful); P and dS outputs have ld kBk and
// all kBk columns written (masked and padding columns 0), so a bf16 consumer may round the
// reduction up to even. Pair-packed outputs: out[(p * kBk + j) * 2 + e] = X(2p + e, j), the row
// past an odd `rows` 0.
#pragma once
#include <cstdint>

#include "backend/cpu/bf16.h"

namespace cs::cpu::flash {

constexpr int64_t kBq = 64, kBk = 64;

// One tile: rows i0 .. i0 + rows of queries, columns j0 .. j0 + cols of keys; starts: the tile's
// rows' segment starts. score(i, j) = scale * s + slope * (j - i) for keys j in [start_i, i].
struct TileArgs {
  int64_t rows, cols, i0, j0;
  float scale, slope;
  const int32_t* starts;
};

// s (scores, unscaled) becomes the masked scores in place (masked: -inf).
void finish_scores(float* s, const TileArgs& t);

// The online softmax's step over one tile. m, l: the rows' running max and sum (updated); corr:
// per row, the factor the row's accumulator must be multiplied by (0 where it was empty); p: the
// tile's probabilities exp(score - m_new) (f32 may be s itself).
void softmax_tile(float* s, const TileArgs& t, float* m, float* l, float* corr, float* p);
void softmax_tile(float* s, const TileArgs& t, float* m, float* l, float* corr, Bf16* p);
void softmax_tile_portable(float* s, const TileArgs& t, float* m, float* l, float* corr, float* p);
void softmax_tile_portable(float* s, const TileArgs& t, float* m, float* l, float* corr, Bf16* p);

// The backward's tile: P = exp(score - lse), dS = P (dP - D) scale (the score's scale folded in);
// lse, dvec: the rows' lse and D = dO . O. f32: P over s and dS over dp, in place. bf16: P
// row-paired (p_pairs), dS as rows (ds_rows) and row-paired (ds_pairs); s and dp are scratch.
void p_ds_tile(float* s, float* dp, const TileArgs& t, const float* lse, const float* dvec);
void p_ds_tile(float* s, float* dp, const TileArgs& t, const float* lse, const float* dvec, Bf16* p_pairs,
               Bf16* ds_rows, Bf16* ds_pairs);
void p_ds_tile_portable(float* s, float* dp, const TileArgs& t, const float* lse, const float* dvec);
void p_ds_tile_portable(float* s, float* dp, const TileArgs& t, const float* lse, const float* dvec,
                        Bf16* p_pairs, Bf16* ds_rows, Bf16* ds_pairs);

}  // namespace cs::cpu::flash
