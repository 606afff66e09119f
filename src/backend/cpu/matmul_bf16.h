// The bf16 half of the CPU matmul (matmul_bf16.cpp, oneDNN); cpu/matmul.cpp dispatches to it when
// either operand is bf16.
#pragma once
#include "core/tensor.h"

namespace cs::cpu {

// out (f32 or bf16, m x n) = alpha * op(a) @ op(b) + beta * out, products of bf16 values
// accumulated in f32 (a bf16 out rounded once at the end); an f32 operand is rounded to bf16
// first. Shapes are checked by the caller.
void matmul_bf16(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, const Tensor& out,
                 int64_t m, int64_t n, int64_t k, float alpha, float beta);

}  // namespace cs::cpu
