// The emulated GPU's <cuda_fp16.h>: the emulation's f16 (the host compiler's _Float16).
#pragma once
#include "cuda_emu/device/emulated_gpu.h"

using __half = ::f16;
inline float __half2float(__half v) { return v.f(); }
inline __half __float2half_rn(float v) { return __half(v); }
