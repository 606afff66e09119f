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
  CS_CHECK(a.ndim() == 2 && b.ndim() == 2 && out.ndim() == 2)
      << a.shape.str() << b.shape.str() << out.shape.str();
  const int64_t m = trans_a ? a.size(1) : a.size(0), k = trans_a ? a.size(0) : a.size(1);
  const int64_t kb = trans_b ? b.size(1) : b.size(0), n = trans_b ? b.size(0) : b.size(1);
  CS_CHECK(k == kb && out.size(0) == m && out.size(1) == n)
      << "matmul a" << a.shape.str() << (trans_a ? "^T" : "") << " b" << b.shape.str()
      << (trans_b ? "^T" : "") << " out" << out.shape.str();
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
