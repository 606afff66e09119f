// Included first in every translation unit of the emulated GPU (tests/CMakeLists.txt: the files of
// src/backend/cuda compiled by the host compiler): the emulated CUDA primitives the kernels use
// (cuda_emulation.h), the runtime (runtime.h), and CS_LAUNCH (common.cuh's kernel launch) as a
// launch on the CPU that converts the arguments to the kernel's parameters once, as the GPU's
// launch does, checks its pointer arguments, and runs the blocks under launch.h.
#pragma once
#include <tuple>
#include <type_traits>
#include <utility>

#include "cuda_emu/cuda_emulation.h"
#include "cuda_emu/device/runtime.h"

// The emulated H100 runs the sm_90a image (attention_wgmma.cu's probe).
#define __CUDA_ARCH_FEAT_SM90_ALL 1
#define __align__(n) alignas(n)

namespace emu::gpu {

template <typename T>
bool pointer_ok(const T& v) {
  if constexpr (std::is_pointer_v<T>)
    return v == nullptr || device_pointer(v);
  else
    return true;
}

template <typename... P>
struct Launch {
  void (*kernel)(P...);
  dim3 grid, block;
  size_t smem;
  cudaStream_t stream;

  template <typename... A>
  void operator()(A&&... args) const {
    static_assert(sizeof...(A) == sizeof...(P), "a kernel launch with the wrong number of arguments");
    using Params = std::tuple<std::decay_t<P>...>;
    struct Closure {
      void (*kernel)(P...);
      Params params;
    };
    Closure c{kernel, Params(std::forward<A>(args)...)};
    const bool pointers = std::apply([](const auto&... p) { return (pointer_ok(p) && ...); }, c.params);
    // Each CUDA thread calls the kernel with its own copy of the parameters.
    auto run = [](void* p) {
      auto* cl = static_cast<Closure*>(p);
      std::apply(cl->kernel, cl->params);
    };
    launch(reinterpret_cast<const void*>(kernel), grid, block, smem, stream, pointers, run, &c);
  }
};

template <typename... P>
Launch<P...> launcher(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t s) {
  return {kernel, grid, block, smem, s};
}

}  // namespace emu::gpu

#define CS_LAUNCH(grid, block, smem, strm, ...) \
  ::emu::gpu::launcher(__VA_ARGS__, dim3(grid), dim3(block), size_t(smem), strm)
