// The bf16 attention (attention_bf16.cpp): the flash loops of attention_flash.h with bf16 tile
// products, f32 accumulation, for --bf16's q, k, v (the ops in attention.cpp dispatch here by
// dtype).
#pragma once
#include <cstdint>

#include "backend/cpu/attention_flash.h"
#include "backend/cpu/bf16.h"
#include "backend/cpu/pair_gemm.h"

namespace cs::cpu {

// The ops' bf16 bodies (arguments checked by the callers): Hd even.
void attention_forward_bf16(const flash::Dims& dm, const Bf16* q, const Bf16* k, const Bf16* v, const float* slopes,
                            const int32_t* starts, Bf16* o, float* lse);
void attention_backward_bf16(const flash::Dims& dm, const Bf16* q, const Bf16* k, const Bf16* v,
                             const float* slopes, const int32_t* starts, const Bf16* o, const float* lse,
                             const Bf16* dout, float* dq, float* dk, float* dv);

}  // namespace cs::cpu
