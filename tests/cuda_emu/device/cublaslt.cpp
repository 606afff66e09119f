// The emulated GPU's cuBLASLt (cublaslt.h says what it checks), and the backend's table of it
// (cs::cuda::lt(), which the GPU build fills by dlopen: src/backend/cuda/cublaslt.cu).
#include "cuda_emu/device/cublaslt.h"

#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "backend/cuda/cublaslt.cuh"

struct cublasLtContext {
  int live = 1;
};
struct cublasLtMatmulDescOpaque_t {
  cublasOperation_t ta = CUBLAS_OP_N, tb = CUBLAS_OP_N;
};
struct cublasLtMatrixLayoutOpaque_t {
  cudaDataType_t type;
  uint64_t rows, cols;
  int64_t ld;
};
struct cublasLtMatmulPreferenceOpaque_t {
  uint64_t max_workspace = 0;
  uint32_t align[4] = {256, 256, 256, 256};  // A, B, C, D: cuBLASLt's default assumption
};

namespace {

// Handles and descriptors live as long as the process, as the library's own memory would to a leak
// checker (the backend keeps its descriptors for the process's life: one per GEMM shape).
template <typename T>
T* keep(const T& v) {
  static std::mutex mu;
  static std::deque<std::unique_ptr<T>> all;
  std::lock_guard<std::mutex> lock(mu);
  all.push_back(std::make_unique<T>(v));
  return all.back().get();
}

constexpr uint64_t kMagic = 0xc0b1a5;
constexpr size_t kAlgoWorkspace = size_t(4) << 20;  // what every emulated algorithm asks for, at most

bool input_type(cudaDataType_t t) { return t == CUDA_R_32F || t == CUDA_R_16F || t == CUDA_R_16BF; }
size_t type_size(cudaDataType_t t) { return t == CUDA_R_32F ? 4 : 2; }

double load(const void* base, cudaDataType_t t, size_t i) {
  switch (t) {
    case CUDA_R_32F: return static_cast<const float*>(base)[i];
    case CUDA_R_16BF: return static_cast<const bf16*>(base)[i].f();
    default: return static_cast<const f16*>(base)[i].f();
  }
}
void store(void* base, cudaDataType_t t, size_t i, float v) {
  switch (t) {
    case CUDA_R_32F: static_cast<float*>(base)[i] = v; break;
    case CUDA_R_16BF: static_cast<bf16*>(base)[i] = bf16(v); break;
    default: static_cast<f16*>(base)[i] = f16(v); break;
  }
}

// The bytes a column-major rows x cols matrix with leading dimension ld spans.
size_t span(const cublasLtMatrixLayoutOpaque_t& l) {
  return l.rows && l.cols ? ((l.cols - 1) * uint64_t(l.ld) + l.rows) * type_size(l.type) : 0;
}

uint32_t alignment_of(const void* p) {
  const auto u = reinterpret_cast<uintptr_t>(p);
  uint32_t a = 256;
  while (a > 1 && u % a) a /= 2;
  return a;
}

// The problem's shape checks, as cuBLASLt makes them (heuristic and matmul alike).
cublasStatus_t check_problem(const cublasLtMatmulDescOpaque_t& op, const cublasLtMatrixLayoutOpaque_t& a,
                             const cublasLtMatrixLayoutOpaque_t& b, const cublasLtMatrixLayoutOpaque_t& c,
                             const cublasLtMatrixLayoutOpaque_t& d) {
  const uint64_t m = op.ta == CUBLAS_OP_T ? a.cols : a.rows, ka = op.ta == CUBLAS_OP_T ? a.rows : a.cols;
  const uint64_t kb = op.tb == CUBLAS_OP_T ? b.cols : b.rows, n = op.tb == CUBLAS_OP_T ? b.rows : b.cols;
  if (ka != kb || c.rows != m || c.cols != n || d.rows != m || d.cols != n || c.type != d.type)
    return CUBLAS_STATUS_INVALID_VALUE;
  // Same input types; a half output only from its own half inputs.
  if (a.type != b.type || (d.type != CUDA_R_32F && d.type != a.type)) return CUBLAS_STATUS_NOT_SUPPORTED;
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

cublasStatus_t cublasLtCreate(cublasLtHandle_t* handle) {
  *handle = keep(cublasLtContext{});
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
  if (!handle || !handle->live) return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->live = 0;  // kept, so that a use after destruction is seen
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* desc, cublasComputeType_t compute, cudaDataType_t scale) {
  if (compute != CUBLAS_COMPUTE_32F || scale != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
  *desc = keep(cublasLtMatmulDescOpaque_t{});
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr,
                                              const void* buf, size_t bytes) {
  if (!desc || bytes != sizeof(int32_t)) return CUBLAS_STATUS_INVALID_VALUE;
  int32_t v;
  std::memcpy(&v, buf, sizeof v);
  if (v != CUBLAS_OP_N && v != CUBLAS_OP_T) return CUBLAS_STATUS_INVALID_VALUE;
  if (attr == CUBLASLT_MATMUL_DESC_TRANSA) desc->ta = cublasOperation_t(v);
  else if (attr == CUBLASLT_MATMUL_DESC_TRANSB) desc->tb = cublasOperation_t(v);
  else return CUBLAS_STATUS_INVALID_VALUE;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* layout, cudaDataType type, uint64_t rows,
                                          uint64_t cols, int64_t ld) {
  if (!input_type(type) || ld < 1 || uint64_t(ld) < rows) return CUBLAS_STATUS_INVALID_VALUE;
  *layout = keep(cublasLtMatrixLayoutOpaque_t{type, rows, cols, ld});
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* pref) {
  *pref = new cublasLtMatmulPreferenceOpaque_t;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void* buf,
                                                    size_t bytes) {
  if (!pref) return CUBLAS_STATUS_INVALID_VALUE;
  if (attr == CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES) {
    if (bytes != sizeof(uint64_t)) return CUBLAS_STATUS_INVALID_VALUE;
    std::memcpy(&pref->max_workspace, buf, bytes);
    return CUBLAS_STATUS_SUCCESS;
  }
  const int i = int(attr) - int(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES);
  if (i < 0 || i > 3 || bytes != sizeof(uint32_t)) return CUBLAS_STATUS_INVALID_VALUE;
  std::memcpy(&pref->align[i], buf, bytes);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
  delete pref;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                                              cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                              cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                              cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t results[], int* returned) {
  *returned = 0;
  if (!handle || !handle->live) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (!desc || !a || !b || !c || !d || !pref || requested < 1) return CUBLAS_STATUS_INVALID_VALUE;
  const cublasStatus_t s = check_problem(*desc, *a, *b, *c, *d);
  if (s != CUBLAS_STATUS_SUCCESS) return s;
  cublasLtMatmulHeuristicResult_t r{};
  r.workspaceSize = pref->max_workspace < kAlgoWorkspace ? pref->max_workspace : kAlgoWorkspace;
  r.algo.data[0] = kMagic;
  r.algo.data[1] = r.workspaceSize;
  for (int i = 0; i < 4; ++i) r.algo.data[2] |= uint64_t(pref->align[i]) << (16 * i);
  r.algo.data[3] = reinterpret_cast<uintptr_t>(desc);
  r.algo.data[4] = reinterpret_cast<uintptr_t>(a);
  r.algo.data[5] = reinterpret_cast<uintptr_t>(b);
  r.algo.data[6] = reinterpret_cast<uintptr_t>(c);
  r.algo.data[7] = reinterpret_cast<uintptr_t>(d);
  r.state = CUBLAS_STATUS_SUCCESS;
  r.wavesCount = 1.f;
  results[0] = r;
  *returned = 1;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, const void* alpha, const void* a,
                              cublasLtMatrixLayout_t a_layout, const void* b, cublasLtMatrixLayout_t b_layout,
                              const void* beta, const void* c, cublasLtMatrixLayout_t c_layout, void* d,
                              cublasLtMatrixLayout_t d_layout, const cublasLtMatmulAlgo_t* algo, void* workspace,
                              size_t workspace_bytes, cudaStream_t stream) {
  if (!handle || !handle->live) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (!desc || !a_layout || !b_layout || !c_layout || !d_layout || !algo || !alpha || !beta)
    return CUBLAS_STATUS_INVALID_VALUE;
  if (emu::gpu::sticky() != cudaSuccess || !emu::gpu::live_stream(stream)) return CUBLAS_STATUS_EXECUTION_FAILED;
  const cublasStatus_t s = check_problem(*desc, *a_layout, *b_layout, *c_layout, *d_layout);
  if (s != CUBLAS_STATUS_SUCCESS) return s;
  if (c == d && c_layout->ld != d_layout->ld) return CUBLAS_STATUS_INVALID_VALUE;  // in place: one layout
  // The algorithm: found for these descriptors, with this much workspace.
  const uint64_t* g = algo->data;
  if (g[0] != kMagic || g[3] != reinterpret_cast<uintptr_t>(desc) || g[4] != reinterpret_cast<uintptr_t>(a_layout) ||
      g[5] != reinterpret_cast<uintptr_t>(b_layout) || g[6] != reinterpret_cast<uintptr_t>(c_layout) ||
      g[7] != reinterpret_cast<uintptr_t>(d_layout) || workspace_bytes < g[1] ||
      (g[1] && !emu::gpu::device_range(workspace, g[1])))
    return CUBLAS_STATUS_INVALID_VALUE;
  const float al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
  // The operands inside device memory, as aligned as the algorithm was told they would be.
  const void* ptrs[4] = {a, b, c, d};
  const cublasLtMatrixLayoutOpaque_t* lays[4] = {a_layout, b_layout, c_layout, d_layout};
  for (int i = 0; i < 4; ++i) {
    if (i == 2 && be == 0.f) continue;  // C is not read
    if (!emu::gpu::device_range(ptrs[i], span(*lays[i]))) return CUBLAS_STATUS_EXECUTION_FAILED;
    if (alignment_of(ptrs[i]) < uint32_t((g[2] >> (16 * i)) & 0xffff)) return CUBLAS_STATUS_EXECUTION_FAILED;
  }
  const cublasLtMatrixLayoutOpaque_t &la = *a_layout, &lb = *b_layout, &lc = *c_layout, &ld = *d_layout;
  const bool ta = desc->ta == CUBLAS_OP_T, tb = desc->tb == CUBLAS_OP_T;
  const uint64_t m = ld.rows, n = ld.cols, k = ta ? la.rows : la.cols;
  // op(A)(i, p) and op(B)(p, j) in double, then the sums (f32 compute: more exact here).
  std::vector<double> opa(m * k), opb(k * n);
  for (uint64_t i = 0; i < m; ++i)
    for (uint64_t p = 0; p < k; ++p) opa[i * k + p] = load(a, la.type, ta ? p + i * uint64_t(la.ld) : i + p * uint64_t(la.ld));
  for (uint64_t p = 0; p < k; ++p)
    for (uint64_t j = 0; j < n; ++j) opb[j * k + p] = load(b, lb.type, tb ? j + p * uint64_t(lb.ld) : p + j * uint64_t(lb.ld));
  std::vector<float> out(m * n);
  for (uint64_t j = 0; j < n; ++j)
    for (uint64_t i = 0; i < m; ++i) {
      double acc = 0;
      for (uint64_t p = 0; p < k; ++p) acc += opa[i * k + p] * opb[j * k + p];
      double v = double(al) * acc;
      if (be != 0.f) v += double(be) * load(c, lc.type, i + j * uint64_t(lc.ld));
      out[j * m + i] = float(v);
    }
  for (uint64_t j = 0; j < n; ++j)
    for (uint64_t i = 0; i < m; ++i) store(d, ld.type, i + j * uint64_t(ld.ld), out[j * m + i]);
  return CUBLAS_STATUS_SUCCESS;
}

namespace cs::cuda {
const LtApi& lt() {
  static const LtApi api{&cublasLtCreate,
                         &cublasLtDestroy,
                         &cublasLtMatmulDescCreate,
                         &cublasLtMatmulDescSetAttribute,
                         &cublasLtMatrixLayoutCreate,
                         &cublasLtMatmulPreferenceCreate,
                         &cublasLtMatmulPreferenceSetAttribute,
                         &cublasLtMatmulPreferenceDestroy,
                         &cublasLtMatmulAlgoGetHeuristic,
                         &cublasLtMatmul};
  return api;
}
}  // namespace cs::cuda
