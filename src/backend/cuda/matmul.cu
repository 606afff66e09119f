// matmul through cuBLASLt (loaded at run time: cublaslt.cuh). Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T, so
// the operands go to cuBLASLt swapped, with no copy. All-f32 GEMMs use CUBLAS_COMPUTE_32F (true
// fp32, never TF32: an fp32 run must match the CPU's to the last digits that matter). When any of
// a, b, out is bf16 (or f16) the product is of bf16 (f16) values with f32 accumulation, as on the
// CPU: an f32 operand is rounded into the context's workspace first. The algorithm cuBLASLt's
// heuristic picks is cached per shape and dtype, per thread.
#include <cublasLt.h>
#include <algorithm>
#include <map>
#include <tuple>

#include "backend/cuda/common.cuh"
#include "backend/cuda/cublaslt.cuh"
#include "backend/cuda/elementwise_kernels.cuh"
#include "backend/cuda/ops.h"

namespace cs::cuda {

namespace {

// The part of the context's workspace cuBLASLt may use; the rest holds rounded operands.
constexpr size_t kLtWorkspace = size_t(32) << 20;

cudaDataType_t cuda_type(DType t) {
  return t == DType::BF16 ? CUDA_R_16BF : t == DType::F16 ? CUDA_R_16F : CUDA_R_32F;
}

void lt_check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw Error(str("[cuda] matmul: ", what, " failed (cuBLAS status ", int(s), ")"));
}

template <typename T>
__global__ void scale_any_kernel(T* x, float beta, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    st(x + i, beta * ld(x + i));
}

// The layouts and the algorithm of one GEMM shape.
struct Plan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
};
using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, bool, bool, int, int, uint32_t, cublasLtHandle_t>;

// The alignment (1..16 bytes) cuBLASLt may assume of a pointer: views into a buffer (a row slice)
// need not be 16-byte aligned, and an algorithm chosen for aligned data would then fault.
uint32_t alignment(const void* p) {
  const auto u = reinterpret_cast<uintptr_t>(p);
  uint32_t a = 16;
  while (a > 1 && u % a) a /= 2;
  return a;
}

const Plan& plan_for(cublasLtHandle_t h, const Key& key, int64_t m, int64_t n, int64_t k, bool ta, bool tb,
                     int64_t lda, int64_t ldb, DType in, DType out, const uint32_t align[3]) {
  thread_local std::map<Key, Plan> cache;
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  Plan p;
  lt_check(lt().desc_create(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
  const cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  lt_check(lt().desc_set(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa), "set TRANSA");
  lt_check(lt().desc_set(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb), "set TRANSB");
  // Column-major views: A is m x k (k x m stored when transposed), B is k x n (n x k), C is m x n.
  lt_check(lt().layout_create(&p.a, cuda_type(in), ta ? k : m, ta ? m : k, lda), "layout A");
  lt_check(lt().layout_create(&p.b, cuda_type(in), tb ? n : k, tb ? k : n, ldb), "layout B");
  lt_check(lt().layout_create(&p.c, cuda_type(out), m, n, m), "layout C");
  cublasLtMatmulPreference_t pref = nullptr;
  lt_check(lt().pref_create(&pref), "preference");
  const size_t ws = kLtWorkspace;
  lt_check(lt().pref_set(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws),
           "preference workspace");
  // D is C (in place): its alignment is C's (cuBLASLt's default assumption for D is 256 bytes).
  const cublasLtMatmulPreferenceAttributes_t align_attr[4] = {
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
  for (int i = 0; i < 4; ++i)
    lt_check(lt().pref_set(pref, align_attr[i], &align[i < 3 ? i : 2], sizeof align[0]), "preference alignment");
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t s = lt().heuristic(h, p.op, p.a, p.b, p.c, p.c, pref, 1, &result, &found);
  lt().pref_destroy(pref);
  if (s != CUBLAS_STATUS_SUCCESS || found == 0)
    throw Error(str("[cuda] matmul: cuBLASLt has no algorithm for m=", m, " n=", n, " k=", k, " (", dtype_name(in),
                    " inputs, ", dtype_name(out), " output)"));
  p.algo = result.algo;
  return cache.emplace(key, p).first->second;
}

}  // namespace

void matmul(Ctx& c, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, const Tensor& out,
            float alpha, float beta) {
  check_float("matmul", "a", a, Device::CUDA);
  check_float("matmul", "b", b, Device::CUDA);
  check_float("matmul", "out", out, Device::CUDA);
  const auto [m, n, k] = matmul_dims(a, trans_a, b, trans_b, out);
  if (m == 0 || n == 0) return;
  if (k == 0) {  // an empty sum: out = beta * out, in out's dtype
    if (beta == 0.f) {
      c.backend.zero(c, out);
    } else if (beta != 1.f) {
      with_float(out.dtype, [&](auto t) {
        using T = decltype(t);
        CS_LAUNCH(blocks_for(out.numel(), 256, 8192), 256, 0, stream(c), scale_any_kernel<T>)(ptr<T>(out), beta, out.numel());
      });
      check_launch("matmul (empty sum)");
    }
    return;
  }
  // The product's input dtype: the half dtype among the three, f32 when there is none.
  DType in = DType::F32;
  for (const Tensor* t : {&a, &b, &out}) {
    if (t->dtype == DType::F32) continue;
    if (in != DType::F32 && in != t->dtype)
      throw Error("[matmul] arguments mix bf16 and f16: expected one half dtype");
    in = t->dtype;
  }
  // Operands in the input dtype: f32 ones rounded into the workspace past cuBLASLt's part (or a
  // stream-ordered allocation when they do not fit).
  OpScratch scratch(c, kLtWorkspace);
  auto as_input = [&](const Tensor& t) -> const void* {
    if (t.dtype == in) return t.data;
    void* dst = nullptr;
    with_float(in, [&](auto h) {
      using H = decltype(h);
      H* d = scratch.take<H>(t.numel(), "matmul (rounded operand)");
      vec::with_width<8>(vec::aligned16(t.data, d), [&](auto w) {  // 16-byte accesses of the rounded side
        constexpr int N = decltype(w)::value;
        CS_LAUNCH(blocks_for(t.numel() / N + 1, 256, 4096), 256, 0, stream(c), ew::cast<N, float, H>)(ptr<float>(t), d,
                                                                                             t.numel());
      });
      dst = d;
    });
    check_launch("matmul operand rounding");
    return dst;
  };
  const void* pa = as_input(a);
  const void* pb = as_input(b);
  auto h = static_cast<cublasLtHandle_t>(c.blas);
  // Swapped: cuBLASLt's A is our b, its B our a; its m our n, its n our m.
  // An operand's alignment is its pointer's and its rows' (ld * element size).
  auto align_of = [](const void* p, int64_t ld, DType t) {
    return std::min(alignment(p), alignment(reinterpret_cast<const void*>(uintptr_t(ld) * dtype_size(t))));
  };
  const uint32_t align[3] = {align_of(pb, b.size(1), in), align_of(pa, a.size(1), in), align_of(out.data, n, out.dtype)};
  const Key key{n, m, k, b.size(1), a.size(1), trans_b, trans_a, int(in), int(out.dtype),
                align[0] | align[1] << 8 | align[2] << 16, h};
  const Plan& p = plan_for(h, key, n, m, k, trans_b, trans_a, b.size(1), a.size(1), in, out.dtype, align);
  lt_check(lt().matmul(h, p.op, &alpha, pb, p.a, pa, p.b, &beta, out.data, p.c, out.data, p.c, &p.algo,
                          c.workspace.data, kLtWorkspace, stream(c)),
           "cublasLtMatmul");
}

}  // namespace cs::cuda
