// The emulated GPU's runtime (runtime.h says what it checks). One device, its state behind one
// mutex; kernels run under launch.h, one launch at a time.
#include "cuda_emu/device/runtime.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>

#include "cuda_emu/launch.h"

namespace emu::gpu {
namespace {

struct Gpu {
  int major = 9, minor = 0, optin_smem = 227 * 1024, sms = 132;
  std::mutex mu;
  std::map<uintptr_t, size_t> allocations;  // base -> bytes
  std::set<cudaStream_t> streams;
  std::map<const void*, int> max_dynamic_smem;  // per kernel, set by cudaFuncSetAttribute
  cudaError_t last = cudaSuccess, stuck = cudaSuccess;
  int streams_made = 0;
  Gpu() {
    const char* g = std::getenv("CS_EMULATED_GPU");
    if (!g || std::string(g) == "h100") return;
    if (std::string(g) != "a100") {
      std::fprintf(stderr, "CS_EMULATED_GPU=%s: expected h100 or a100 (or unset: h100)\n", g);
      std::exit(2);
    }
    major = 8, minor = 0, optin_smem = 163 * 1024, sms = 108;
  }
};

Gpu& gpu() {
  static Gpu g;
  return g;
}

// A call's result: a sticky error wins; an error is also left for cudaGetLastError.
cudaError_t result(cudaError_t e) {
  Gpu& g = gpu();
  if (g.stuck != cudaSuccess) return g.stuck;
  if (e != cudaSuccess) g.last = e;
  return e;
}

// The allocation holding p (p within [base, base + bytes]), or allocations.end().
std::map<uintptr_t, size_t>::const_iterator holder(const Gpu& g, const void* p) {
  const auto u = reinterpret_cast<uintptr_t>(p);
  auto it = g.allocations.upper_bound(u);
  if (it == g.allocations.begin()) return g.allocations.end();
  --it;
  return u <= it->first + it->second ? it : g.allocations.end();
}

void* device_alloc(size_t bytes) {
  // Exactly the bytes asked for (AddressSanitizer sees an access past them), on 256 bytes as
  // cudaMalloc's are; NaN-filled, as memory nobody wrote may hold anything.
  void* p = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
  if (!p) return nullptr;
  std::memset(p, 0xff, bytes);
  std::lock_guard<std::mutex> lock(gpu().mu);
  gpu().allocations[reinterpret_cast<uintptr_t>(p)] = bytes;
  return p;
}

cudaError_t device_free(void* p) {
  if (!p) return result(cudaSuccess);
  Gpu& g = gpu();
  {
    std::lock_guard<std::mutex> lock(g.mu);
    auto it = g.allocations.find(reinterpret_cast<uintptr_t>(p));
    if (it == g.allocations.end()) return result(cudaErrorInvalidDevicePointer);
    g.allocations.erase(it);
  }
  std::free(p);
  return result(cudaSuccess);
}

// Whether a copy's sides are where its kind says.
bool copy_sides_ok(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  const bool to_device = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool from_device = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (kind == cudaMemcpyDefault || kind == cudaMemcpyHostToHost) return true;
  return (to_device ? device_range(dst, bytes) : !device_pointer(dst)) &&
         (from_device ? device_range(src, bytes) : !device_pointer(src));
}

}  // namespace

bool device_range(const void* p, size_t bytes) {
  std::lock_guard<std::mutex> lock(gpu().mu);
  auto it = holder(gpu(), p);
  return it != gpu().allocations.end() && reinterpret_cast<uintptr_t>(p) + bytes <= it->first + it->second;
}

bool device_pointer(const void* p) {
  std::lock_guard<std::mutex> lock(gpu().mu);
  return holder(gpu(), p) != gpu().allocations.end();
}

bool live_stream(cudaStream_t s) {
  std::lock_guard<std::mutex> lock(gpu().mu);
  return s == nullptr || gpu().streams.count(s) > 0;
}

cudaError_t sticky() { return gpu().stuck; }

cudaError_t set_func_attribute(const void* kernel, cudaFuncAttribute attr, int value) {
  Gpu& g = gpu();
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 || value > g.optin_smem)
    return result(cudaErrorInvalidValue);
  g.max_dynamic_smem[kernel] = value;
  return result(cudaSuccess);
}

cudaError_t launch(const void* kernel, dim3 grid, dim3 block, size_t smem, cudaStream_t s, bool pointers_ok,
                   void (*run)(void*), void* closure) {
  Gpu& g = gpu();
  if (g.stuck != cudaSuccess) return g.stuck;
  if (block.x < 1 || block.x > 1024 || grid.x < 1 || grid.x > 0x7fffffffu || grid.y < 1 || grid.y > 65535 ||
      grid.z != 1)
    return result(cudaErrorInvalidConfiguration);
  if (block.y != 1 || block.z != 1) {
    std::fprintf(stderr, "[emulated gpu] a block of %u x %u x %u threads: the emulation runs 1-D blocks only\n",
                 block.x, block.y, block.z);
    std::abort();
  }
  auto limit = g.max_dynamic_smem.find(kernel);
  const size_t allowed = limit != g.max_dynamic_smem.end() ? size_t(limit->second) : size_t(48 * 1024);
  if (smem > allowed || smem > size_t(g.optin_smem)) return result(cudaErrorInvalidValue);
  if (!live_stream(s)) return result(cudaErrorInvalidResourceHandle);
  if (!pointers_ok) {
    std::fputs("[emulated gpu] a kernel's pointer argument is not device memory\n", stderr);
    return g.stuck = cudaErrorIllegalAddress;
  }
  const long align0 = bad_align, range0 = bad_range + bad_desc, areg0 = bad_areg, open0 = left_in_flight;
  emu::launch(grid.x, grid.y, int(block.x), smem, [&] { run(closure); });
  if (bad_align != align0) {
    std::fputs("[emulated gpu] a kernel made a misaligned access\n", stderr);
    g.stuck = cudaErrorMisalignedAddress;
  } else if (bad_range + bad_desc != range0) {
    std::fputs("[emulated gpu] a kernel addressed shared memory outside its block's or through a bad descriptor\n",
               stderr);
    g.stuck = cudaErrorIllegalAddress;
  } else if (bad_areg != areg0 || left_in_flight != open0) {
    std::fputs("[emulated gpu] a kernel left asynchronous copies or products unwaited, or wrote a running "
               "product's registers\n", stderr);
    g.stuck = cudaErrorLaunchFailure;
  }
  return g.stuck;
}

}  // namespace emu::gpu

using emu::gpu::result;

const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorMisalignedAddress: return "misaligned address";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
  }
  return "unknown error";
}

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorMisalignedAddress: return "cudaErrorMisalignedAddress";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
  }
  return "cudaErrorUnknown";
}

cudaError_t cudaGetLastError() {
  auto& g = emu::gpu::gpu();
  if (g.stuck != cudaSuccess) return g.stuck;
  const cudaError_t e = g.last;
  g.last = cudaSuccess;
  return e;
}

cudaError_t cudaPeekAtLastError() {
  auto& g = emu::gpu::gpu();
  return g.stuck != cudaSuccess ? g.stuck : g.last;
}

cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int dev) { return result(dev == 0 ? cudaSuccess : cudaErrorInvalidDevice); }
cudaError_t cudaGetDevice(int* dev) {
  *dev = 0;
  return result(cudaSuccess);
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int dev) {
  if (dev != 0) return result(cudaErrorInvalidDevice);
  auto& g = emu::gpu::gpu();
  switch (attr) {
    case cudaDevAttrMultiProcessorCount: *value = g.sms; break;
    case cudaDevAttrComputeCapabilityMajor: *value = g.major; break;
    case cudaDevAttrComputeCapabilityMinor: *value = g.minor; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = g.optin_smem; break;
    default: return result(cudaErrorInvalidValue);
  }
  return result(cudaSuccess);
}

cudaError_t cudaDeviceSynchronize() { return result(cudaSuccess); }

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  *total_bytes = size_t(80) << 30;
  *free_bytes = size_t(64) << 30;
  return result(cudaSuccess);
}

cudaError_t cudaMalloc(void** p, size_t bytes) {
  *p = nullptr;
  if (emu::gpu::sticky() != cudaSuccess) return emu::gpu::sticky();
  if (bytes == 0) return result(cudaSuccess);
  *p = emu::gpu::device_alloc(bytes);
  return result(*p ? cudaSuccess : cudaErrorMemoryAllocation);
}
cudaError_t cudaFree(void* p) { return emu::gpu::device_free(p); }
cudaError_t cudaMallocAsync(void** p, size_t bytes, cudaStream_t s) {
  if (!emu::gpu::live_stream(s)) return result(cudaErrorInvalidResourceHandle);
  return cudaMalloc(p, bytes);
}
cudaError_t cudaFreeAsync(void* p, cudaStream_t s) {
  if (!emu::gpu::live_stream(s)) return result(cudaErrorInvalidResourceHandle);
  return emu::gpu::device_free(p);
}

struct CUmemPoolHandle_st {};
cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t* pool, int dev) {
  static CUmemPoolHandle_st the_pool;
  if (dev != 0) return result(cudaErrorInvalidDevice);
  *pool = &the_pool;
  return result(cudaSuccess);
}
cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t pool, cudaMemPoolAttr attr, void* value) {
  return result(pool && value && attr == cudaMemPoolAttrReleaseThreshold ? cudaSuccess : cudaErrorInvalidValue);
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s) {
  if (emu::gpu::sticky() != cudaSuccess) return emu::gpu::sticky();
  if (!emu::gpu::live_stream(s)) return result(cudaErrorInvalidResourceHandle);
  if (!bytes) return result(cudaSuccess);
  if (!emu::gpu::copy_sides_ok(dst, src, bytes, kind)) return result(cudaErrorInvalidValue);
  std::memmove(dst, src, bytes);
  return result(cudaSuccess);
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  return cudaMemcpyAsync(dst, src, bytes, kind, nullptr);
}
cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t s) {
  if (width > dpitch || width > spitch) return result(cudaErrorInvalidValue);
  for (size_t r = 0; r < height; ++r) {
    const cudaError_t e = cudaMemcpyAsync(static_cast<char*>(dst) + r * dpitch, static_cast<const char*>(src) + r * spitch,
                                          width, kind, s);
    if (e != cudaSuccess) return e;
  }
  return result(cudaSuccess);
}

cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t s) {
  if (emu::gpu::sticky() != cudaSuccess) return emu::gpu::sticky();
  if (!emu::gpu::live_stream(s)) return result(cudaErrorInvalidResourceHandle);
  if (!bytes) return result(cudaSuccess);
  if (!emu::gpu::device_range(p, bytes)) return result(cudaErrorInvalidValue);
  std::memset(p, value, bytes);
  return result(cudaSuccess);
}
cudaError_t cudaMemset(void* p, int value, size_t bytes) { return cudaMemsetAsync(p, value, bytes, nullptr); }

struct CUstream_st {
  int id;
};
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags) {
  auto& g = emu::gpu::gpu();
  if (flags > cudaStreamNonBlocking) return result(cudaErrorInvalidValue);
  std::lock_guard<std::mutex> lock(g.mu);
  *s = new CUstream_st{++g.streams_made};
  g.streams.insert(*s);
  return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, 0); }
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  if (!emu::gpu::live_stream(s)) return result(cudaErrorInvalidResourceHandle);
  return result(cudaSuccess);
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  auto& g = emu::gpu::gpu();
  {
    std::lock_guard<std::mutex> lock(g.mu);
    if (!s || !g.streams.erase(s)) return result(cudaErrorInvalidResourceHandle);
  }
  delete s;
  return result(cudaSuccess);
}
