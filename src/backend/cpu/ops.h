// Declarations of the CPU kernels that fill the op table (one family per .cpp), plus the naive
// attention kept as the test and benchmark reference. See backend/backend.h for the contracts:
// every kernel takes the execution context first (unused on the CPU: ops finish before they
// return), checks its tensors' dtypes and devices at entry (backend/op_check.h) and computes in
// f32.
#pragma once
#include "backend/backend.h"

namespace cs::cpu {

#include "backend/op_decls.inc"

// The reference: materialises the (T, T) scores of one head at a time. The contract of
// attention_forward / attention_backward (without segments).
void attention_naive_forward(Ctx& c, const Tensor& q, const Tensor& k, const Tensor& v,
                             const Tensor& slopes, const Tensor& o, const Tensor& lse);
void attention_naive_backward(Ctx& c, const Tensor& q, const Tensor& k, const Tensor& v,
                              const Tensor& slopes, const Tensor& o, const Tensor& lse,
                              const Tensor& dout, const Tensor& dq, const Tensor& dk,
                              const Tensor& dv);

}  // namespace cs::cpu
