// Declarations of the CUDA kernels that fill the CUDA op table (one family per .cu, the same
// stems as backend/cpu). See backend/backend.h for the contracts: every op runs on the context's
// stream (asynchronously: it returns once queued), checks its tensors' dtypes and devices at entry
// and computes in f32 whatever the storage dtype (f32, bf16 or f16 where the contract says
// f32|bf16: --fp16 runs on the GPU with f16 where --bf16 has bf16).
#pragma once
#include "backend/backend.h"

namespace cs {
// The CUDA backend's op table (table.cu).
const Ops& cuda_ops();
}  // namespace cs

namespace cs::cuda {

#include "backend/op_decls.inc"

}  // namespace cs::cuda
