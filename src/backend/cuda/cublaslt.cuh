// cuBLASLt, loaded when the first CUDA context is made (dlopen of libcublasLt.so.13, or the
// unversioned name) rather than linked: the library is large, and linking it made every process
// of a CUDA build map about 210 MB of resident memory at start-up, CPU-only runs included. The
// calls keep cuBLASLt's own signatures (decltype of the header's declarations).
#pragma once
#include <cublasLt.h>

namespace cs::cuda {

struct LtApi {
  decltype(&cublasLtCreate) create;
  decltype(&cublasLtDestroy) destroy;
  decltype(&cublasLtMatmulDescCreate) desc_create;
  decltype(&cublasLtMatmulDescSetAttribute) desc_set;
  decltype(&cublasLtMatrixLayoutCreate) layout_create;
  decltype(&cublasLtMatmulPreferenceCreate) pref_create;
  decltype(&cublasLtMatmulPreferenceSetAttribute) pref_set;
  decltype(&cublasLtMatmulPreferenceDestroy) pref_destroy;
  decltype(&cublasLtMatmulAlgoGetHeuristic) heuristic;
  decltype(&cublasLtMatmul) matmul;
};

// The loaded API (once per process); a cs::Error naming the library when it cannot be loaded.
const LtApi& lt();

}  // namespace cs::cuda
