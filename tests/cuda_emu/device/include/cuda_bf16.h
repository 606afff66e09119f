// The emulated GPU's <cuda_bf16.h>: the emulation's bf16 (round to nearest even, as __float2bfloat16_rn).
#pragma once
#include "cuda_emu/device/emulated_gpu.h"

using __nv_bfloat16 = ::bf16;
inline float __bfloat162float(__nv_bfloat16 v) { return v.f(); }
inline __nv_bfloat16 __float2bfloat16_rn(float v) { return __nv_bfloat16(v); }
