// What every CUDA kernel file shares: error checks that become one-line cs::Errors, the context's
// stream, storage-dtype loads and stores (f32, bf16, f16; arithmetic always in f32) and the
// dispatch from a tensor's dtype to a kernel template, launch-size helpers.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <sstream>
#include <string>

#include "backend/backend.h"
#include "backend/cuda/warp_reduce.cuh"
#include "backend/op_check.h"

namespace cs::cuda {

// A message from its pieces (the .cu files do not use fmt: its compile-time format checks do not
// compile under nvcc's host pass).
template <typename... A>
std::string str(const A&... a) {
  std::ostringstream os;
  (os << ... << a);
  return os.str();
}

// A failed CUDA runtime call is a cs::Error naming the call and the runtime's reason (a sticky
// device fault such as an illegal address surfaces at the next call that checks).
void check(cudaError_t e, const char* what);
// After a kernel launch: a launch failure (bad configuration, no kernel image for this GPU).
void check_launch(const char* kernel);

inline cudaStream_t stream(const Ctx& c) { return static_cast<cudaStream_t>(c.stream); }

// A kernel launch: CS_LAUNCH(grid, block, smem, stream, kernel)(args...) is
// kernel<<<grid, block, smem, stream>>>(args...), the kernel last because a template's arguments
// may hold commas. tests/cuda_emu's emulated device defines it to run the kernel on the CPU, which
// is how the host code of this folder runs in CI.
#ifndef CS_LAUNCH
#define CS_LAUNCH(grid, block, smem, strm, ...) __VA_ARGS__<<<grid, block, smem, strm>>>
#endif

using bf16 = __nv_bfloat16;
using f16 = __half;

// Loads widen exactly; stores round to nearest even (as the CPU's bf16.h and core/half.h). The
// emulated GPU (tests/cuda_emu) has its own, for its bf16 and f16.
#ifndef CS_CUDA_EMULATION
__device__ __forceinline__ float ld(const float* p) { return *p; }
__device__ __forceinline__ float ld(const bf16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ float ld(const f16* p) { return __half2float(*p); }
__device__ __forceinline__ void st(float* p, float v) { *p = v; }
__device__ __forceinline__ void st(bf16* p, float v) { *p = __float2bfloat16_rn(v); }
__device__ __forceinline__ void st(f16* p, float v) { *p = __float2half_rn(v); }
#else
using ::ld;
using ::st;
#endif

template <typename T>
T* ptr(const Tensor& t) {
  return static_cast<T*>(t.data);
}

// Calls fn(T{}) with T the C++ type of a floating tensor's dtype (f32, bf16 or f16). The caller
// has checked the dtype (check_float).
template <typename Fn>
void with_float(DType t, Fn&& fn) {
  switch (t) {
    case DType::BF16: fn(bf16{}); return;
    case DType::F16: fn(f16{}); return;
    default: fn(float{}); return;
  }
}

// An op's device scratch: carved from the context's workspace (from byte `offset` on), or, for
// what does not fit, stream-ordered allocations freed (in stream order) when the op's scratch goes.
class OpScratch {
 public:
  explicit OpScratch(const Ctx& c, size_t offset = 0)
      : c_(c), next_(static_cast<uint8_t*>(c.workspace.data) + offset),
        left_(c.workspace.nbytes() > offset ? c.workspace.nbytes() - offset : 0) {}
  ~OpScratch() {
    for (int i = 0; i < n_extra_; ++i) cudaFreeAsync(extra_[i], stream(c_));
  }
  OpScratch(const OpScratch&) = delete;
  OpScratch& operator=(const OpScratch&) = delete;
  template <typename T>
  T* take(int64_t count, const char* what) {
    const size_t bytes = (size_t(count) * sizeof(T) + 255) / 256 * 256;
    if (bytes <= left_) {
      void* p = next_;
      next_ += bytes;
      left_ -= bytes;
      return static_cast<T*>(p);
    }
    CS_CHECK(n_extra_ < kMaxExtra) << what;
    void* p = nullptr;
    check(cudaMallocAsync(&p, bytes, stream(c_)), what);
    extra_[n_extra_++] = p;
    return static_cast<T*>(p);
  }

 private:
  static constexpr int kMaxExtra = 4;
  const Ctx& c_;
  uint8_t* next_;
  size_t left_;
  void* extra_[kMaxExtra] = {};
  int n_extra_ = 0;
};

// Blocks of `threads` covering n items, capped where a grid-stride loop takes the rest.
inline unsigned blocks_for(int64_t n, int threads, int64_t cap = 65535) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  return unsigned(b < cap ? b : cap);
}

// A launch over rows x chunks (elementwise_kernels.cuh's rows_cols): chunks on the threads of
// the grid's x (256 a block, fewer for short rows), rows on its y; both grid-stride past the caps.
struct RowsLaunch {
  dim3 grid;
  unsigned threads;
};
inline RowsLaunch rows_launch(int64_t rows, int64_t chunks) {
  const int threads = chunks >= 256 ? 256 : chunks > 32 ? int((chunks + 31) / 32 * 32) : 32;
  return {dim3(blocks_for(chunks, threads, 1024), unsigned(rows < 65535 ? (rows > 0 ? rows : 1) : 65535)),
          unsigned(threads)};
}

}  // namespace cs::cuda
