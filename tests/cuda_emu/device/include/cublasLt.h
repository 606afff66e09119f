// The emulated GPU's <cublasLt.h> (tests/cuda_emu/device/cublaslt.h).
#pragma once
#include "cuda_emu/device/cublaslt.h"
