// The CUDA runtime of the emulated GPU: what src/backend/cuda's host code calls (through the shim
// headers in include/), implemented on the CPU (runtime.cpp), so that the CUDA backend as a whole
// (its argument checks, launch configurations, width choices, scratch, cuBLASLt descriptors and
// every kernel) runs in CI. Device memory is host memory the runtime tracks; every call runs when
// it is made (one stream at a time, in order); a launch runs the kernel's blocks one after another,
// each CUDA thread a fiber on the calling thread (launch.h). What a GPU refuses is refused with the runtime's error, as a GPU would: a block
// over 1024 threads, a grid over 2^31 - 1 blocks in x or 65535 in y, dynamic shared memory over
// 48 KB without cudaFuncSetAttribute having raised that kernel's limit, or over the device's
// opt-in maximum; a copy whose device side is not inside one allocation or whose host side is;
// a kernel's pointer argument outside device memory; a wide access off its alignment, a wmma,
// ldmatrix or cp.async address off its alignment or outside shared memory (then, as on a GPU,
// every later call fails with that error). The emulated GPU is an H100 (compute capability 9.0,
// 227 KB of shared memory per block); CS_EMULATED_GPU=a100 makes it an A100 (8.0, 163 KB).
#pragma once
#include <cstddef>
#include <cstdint>

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevicePointer = 17,
  cudaErrorInvalidMemcpyDirection = 21,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorIllegalAddress = 700,
  cudaErrorMisalignedAddress = 716,
  cudaErrorLaunchFailure = 719,
};

struct CUstream_st;
using cudaStream_t = CUstream_st*;
struct CUmemPoolHandle_st;
using cudaMemPool_t = CUmemPoolHandle_st*;

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};
enum cudaDeviceAttr {
  cudaDevAttrMultiProcessorCount = 16,
  cudaDevAttrComputeCapabilityMajor = 75,
  cudaDevAttrComputeCapabilityMinor = 76,
  cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
};
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
enum cudaMemPoolAttr { cudaMemPoolAttrReleaseThreshold = 4 };
constexpr unsigned cudaStreamNonBlocking = 1;

const char* cudaGetErrorString(cudaError_t e);
const char* cudaGetErrorName(cudaError_t e);
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();

cudaError_t cudaGetDeviceCount(int* n);
cudaError_t cudaSetDevice(int dev);
cudaError_t cudaGetDevice(int* dev);
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int dev);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes);

cudaError_t cudaMalloc(void** p, size_t bytes);
cudaError_t cudaFree(void* p);
cudaError_t cudaMallocAsync(void** p, size_t bytes, cudaStream_t s);
cudaError_t cudaFreeAsync(void* p, cudaStream_t s);
template <typename T>
cudaError_t cudaMalloc(T** p, size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(p), bytes);
}
template <typename T>
cudaError_t cudaMallocAsync(T** p, size_t bytes, cudaStream_t s) {
  return cudaMallocAsync(reinterpret_cast<void**>(p), bytes, s);
}
cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t* pool, int dev);
cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t pool, cudaMemPoolAttr attr, void* value);

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s);
cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t s);
cudaError_t cudaMemset(void* p, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t s);

cudaError_t cudaStreamCreate(cudaStream_t* s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaStreamDestroy(cudaStream_t s);

namespace emu::gpu {
// cudaFuncSetAttribute's work, for the kernel at `kernel`.
cudaError_t set_func_attribute(const void* kernel, cudaFuncAttribute attr, int value);
// Whether [p, p + bytes) lies inside one live device allocation.
bool device_range(const void* p, size_t bytes);
// Whether p is in or one past the end of a live device allocation (a kernel's pointer argument).
bool device_pointer(const void* p);
// Whether s is the legacy default stream or a live stream of this device.
bool live_stream(cudaStream_t s);
// A launch of grid x block with smem bytes on s of the kernel at `kernel`: the GPU's checks
// (cudaSuccess, or the error the launch leaves for cudaGetLastError), then run() on the CPU, then
// what the emulation saw of its accesses (a sticky error from then on).
cudaError_t launch(const void* kernel, dim3 grid, dim3 block, size_t smem, cudaStream_t s, bool pointers_ok,
                   void (*run)(void*), void* closure);
// A CUDA library's call's error (cuBLASLt's, CUB's) left for cudaGetLastError, and the sticky one.
cudaError_t sticky();
}  // namespace emu::gpu

template <typename T>
cudaError_t cudaFuncSetAttribute(T* kernel, cudaFuncAttribute attr, int value) {
  return emu::gpu::set_func_attribute(reinterpret_cast<const void*>(kernel), attr, value);
}
