// The emulated GPU's <cuda_runtime.h> (tests/cuda_emu/device/runtime.h).
#pragma once
#include "cuda_emu/device/emulated_gpu.h"
