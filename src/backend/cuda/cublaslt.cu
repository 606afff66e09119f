// Loads cuBLASLt on first use (see cublaslt.cuh for why it is not linked).
#include <dlfcn.h>

#include <string>

#include "backend/cuda/common.cuh"
#include "backend/cuda/cublaslt.cuh"

namespace cs::cuda {

namespace {
template <typename F>
void bind(void* lib, const char* name, F& f) {
  f = reinterpret_cast<F>(dlsym(lib, name));
  if (!f) throw Error(str("[cuda] libcublasLt has no ", name, ". Hint: install CUDA 12 or later's cuBLAS"));
}

LtApi load() {
  // The major version this build's headers describe first; the unversioned name last.
  const std::string versioned = str("libcublasLt.so.", CUBLAS_VER_MAJOR);
  void* lib = nullptr;
  for (const char* name : {versioned.c_str(), "libcublasLt.so"})
    if ((lib = dlopen(name, RTLD_NOW | RTLD_LOCAL))) break;
  if (!lib)
    throw Error(str("[cuda] cannot load cuBLASLt (", versioned, "): ", dlerror(),
                    ". Hint: add the CUDA toolkit's lib64 folder to LD_LIBRARY_PATH"));
  LtApi a{};
  bind(lib, "cublasLtCreate", a.create);
  bind(lib, "cublasLtDestroy", a.destroy);
  bind(lib, "cublasLtMatmulDescCreate", a.desc_create);
  bind(lib, "cublasLtMatmulDescSetAttribute", a.desc_set);
  bind(lib, "cublasLtMatrixLayoutCreate", a.layout_create);
  bind(lib, "cublasLtMatmulPreferenceCreate", a.pref_create);
  bind(lib, "cublasLtMatmulPreferenceSetAttribute", a.pref_set);
  bind(lib, "cublasLtMatmulPreferenceDestroy", a.pref_destroy);
  bind(lib, "cublasLtMatmulAlgoGetHeuristic", a.heuristic);
  bind(lib, "cublasLtMatmul", a.matmul);
  return a;  // the library stays loaded for the life of the process
}
}  // namespace

const LtApi& lt() {
  static const LtApi api = load();  // thread-safe once; a failure throws and is retried next call
  return api;
}

}  // namespace cs::cuda
