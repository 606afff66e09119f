// The emulated GPU's CUB (tests/cuda_emu/device/cub.h).
#pragma once
#include "cuda_emu/device/cub.h"
