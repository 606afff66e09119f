// matmul through cblas_sgemm (Debian's OpenMP OpenBLAS: BLAS threads come from the same libgomp
// pool as our kernels, so the two never oversubscribe the cores). When either operand is bf16
// (--bf16: the parameters' compute copy, the activations that feed GEMMs) the product runs in
// bf16 with f32 accumulation through oneDNN (matmul_bf16.cpp), as it does for a bf16 output.
#include <cblas.h>

#include "backend/cpu/matmul_bf16.h"
#include "backend/cpu/ops.h"
#include "backend/op_check.h"

namespace cs::cpu {

void matmul(Ctx&, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, const Tensor& out,
            float alpha, float beta) {
  check_f32_or_bf16("matmul", "a", a, Device::CPU);
  check_f32_or_bf16("matmul", "b", b, Device::CPU);
  check_f32_or_bf16("matmul", "out", out, Device::CPU);
  const auto [m, n, k] = matmul_dims(a, trans_a, b, trans_b, out);
  if (m == 0 || n == 0) return;
  if (a.dtype == DType::BF16 || b.dtype == DType::BF16 || out.dtype == DType::BF16) {
    matmul_bf16(a, trans_a, b, trans_b, out, m, n, k, alpha, beta);
    return;
  }
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              int(m), int(n), int(k), alpha, a.f32(), int(a.size(1)), b.f32(), int(b.size(1)), beta,
              out.f32(), int(n));
}

}  // namespace cs::cpu
