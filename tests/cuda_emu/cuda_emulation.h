// A host emulation of the CUDA primitives the GPU kernels use (src/backend/cuda/*_kernels.cuh and
// the .cu files), so that CI runs their text on the CPU: each CUDA thread of a block is a fiber
// (its own stack and context, launch.h), switched only where a CUDA thread waits, at
// __syncthreads / __syncwarp and the warp-collective operations, whose barriers are the fibers'
// (FiberBarrier); between two barriers the threads run one after another, in ascending order one
// phase and descending the next, so a read that a missing barrier leaves before its write shows
// as a wrong value in one of the two. An exchange through memory for __shfl_xor_sync, and
// nvcuda::wmma with the documented element -> address maps of load_matrix_sync /
// store_matrix_sync (each lane holds a whole fragment; accumulator stores are spread over the
// lanes). Every wmma pointer is checked for 32-byte alignment, its ldm for the multiple wmma
// requires, and its 16 x 16 extent for lying inside the block's shared memory.
// bf16 rounds to nearest even as __float2bfloat16_rn; f16 is the compiler's _Float16.
#pragma once
#include <cassert>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <vector>
#include <algorithm>
#include <atomic>
#include <string>

#include "cuda_emu/fiber.h"

#define CS_CUDA_EMULATION
#define CS_TC_SHARED(name) unsigned char* name = emu::tl_smem
#define CS_FLASH_SHARED(name) float* name = reinterpret_cast<float*>(emu::tl_smem)
#define __device__
#define __host__
#define __global__
#define __forceinline__ inline
#define __restrict__
#define __launch_bounds__(...)

struct uint3e { unsigned x = 0, y = 0, z = 0; };
inline thread_local uint3e threadIdx, blockIdx, blockDim, gridDim;
// A kernel's static shared memory: one object for all the threads (blocks run one at a time).
#define __shared__ static

namespace emu {
inline thread_local unsigned char* tl_smem;
inline unsigned char* g_smem_lo;
inline unsigned char* g_smem_hi;
// A warp's exchange area for the warp-collective instructions (mma_emulation.h): each lane's
// registers or address, written, then read by every lane after a warp barrier. A warp alternates
// between two: a lane writes one again only after the barrier of the next exchange, which no lane
// passes before every lane has finished reading this one.
struct WarpStage {
  uint32_t a[32][4];
  uint32_t b[32][2];
  float c[32][4];
  const void* p[32];
};
// A warpgroup's exchange area for wgmma (wgmma_emulation.h): each thread's A registers and descriptors.
struct WgStage {
  uint32_t a[128][4];
  uint64_t da[128], db[128];
};
// The fibers of the block being run (launch.h): the OS thread's context to return to, and the
// fiber running now. AddressSanitizer is told of every switch of stacks.
struct Fiber {
  Context ctx;
  char* stack = nullptr;
  size_t stack_size = 0;
  bool done = false;
};
struct Scheduler {
  Context main;
  Fiber* cur = nullptr;
  const void* main_stack = nullptr;  // the OS thread's stack (AddressSanitizer's bookkeeping)
  size_t main_stack_size = 0;
  long progress = 0;                 // barrier arrivals and finished fibers: a pass without any is a deadlock
};
inline thread_local Scheduler* tl_sched = nullptr;

// From the running fiber back to the scheduler, which resumes it later.
inline void yield() {
  Scheduler* s = tl_sched;
  void* fake = nullptr;
  asan_start_switch(&fake, s->main_stack, s->main_stack_size);
  switch_context(s->cur->ctx, s->main);
  asan_finish_switch(fake, nullptr, nullptr);
}
// A barrier of `expected` fibers: the last to arrive goes on, the others yield until it has.
struct FiberBarrier {
  int expected = 0, arrived = 0;
  unsigned generation = 0;
  void arrive_and_wait() {
    const unsigned g = generation;
    ++tl_sched->progress;
    if (++arrived == expected) {
      arrived = 0;
      ++generation;
      return;
    }
    while (generation == g) yield();
  }
};
struct Block {
  FiberBarrier* bar;
  FiberBarrier* wbar[32];
  FiberBarrier* gbar[8];  // one per warpgroup (128 threads)
  float shfl[32][32];
  WarpStage ws[32][2];  // two per warp, used in turn: one barrier per exchange suffices
  WgStage wg[8][2];
};
inline thread_local Block* tl_block;
inline std::atomic<long> bad_align{0}, bad_range{0}, bad_desc{0}, bad_areg{0};
// A B-byte vector access (vec.cuh) at p: the GPU faults unless p is a multiple of B.
inline void check_aligned(const void* p, int b) {
  if (reinterpret_cast<uintptr_t>(p) % unsigned(b)) bad_align++;
}
}  // namespace emu

inline void __syncthreads() { emu::tl_block->bar->arrive_and_wait(); }
inline void __syncwarp() { emu::tl_block->wbar[threadIdx.x / 32]->arrive_and_wait(); }
inline float __shfl_xor_sync(unsigned mask, float v, int m) {
  if (mask != 0xffffffffu) std::abort();
  const int w = threadIdx.x / 32, l = threadIdx.x & 31;
  emu::tl_block->shfl[w][l] = v;
  __syncwarp();
  const float r = emu::tl_block->shfl[w][l ^ m];
  __syncwarp();
  return r;
}
inline float __shfl_sync(unsigned mask, float v, int src) {
  if (mask != 0xffffffffu) std::abort();
  const int w = threadIdx.x / 32, l = threadIdx.x & 31;
  emu::tl_block->shfl[w][l] = v;
  __syncwarp();
  const float r = emu::tl_block->shfl[w][src & 31];
  __syncwarp();
  return r;
}
inline float __expf(float x) { return expf(x); }
using std::min;

struct bf16 {
  uint16_t b;
  bf16() = default;
  bf16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) { b = 0x7fc0; return; }
    u += 0x7fffu + ((u >> 16) & 1u);
    b = uint16_t(u >> 16);
  }
  float f() const {
    uint32_t u = uint32_t(b) << 16;
    float r;
    std::memcpy(&r, &u, 4);
    return r;
  }
};
struct f16 {
  _Float16 h;
  f16() = default;
  f16(float f) : h(_Float16(f)) {}
  float f() const { return float(h); }
};
inline float ld(const float* p) { return *p; }
inline float ld(const bf16* p) { return p->f(); }
inline float ld(const f16* p) { return p->f(); }
inline void st(float* p, float v) { *p = v; }
inline void st(bf16* p, float v) { *p = bf16(v); }
inline void st(f16* p, float v) { *p = f16(v); }

namespace nvcuda::wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };
template <class Use, int M, int N, int K, class T, class L = void>
struct fragment {
  static constexpr int num_elements = 256;
  float x[256];
};
inline void check_ptr(const void* p, unsigned ldm, int esz, bool col_extent_rows) {
  auto c = reinterpret_cast<const unsigned char*>(p);
  if (reinterpret_cast<uintptr_t>(p) % 32) emu::bad_align++;
  if (esz == 2 && ldm % 8) emu::bad_align++;
  if (esz == 4 && ldm % 4) emu::bad_align++;
  // the 16 x 16 extent: 15 strides + 16 elements
  const unsigned char* last = c + (size_t(15) * ldm + 16) * esz;
  if (c < emu::g_smem_lo || last > emu::g_smem_hi) emu::bad_range++;
  (void)col_extent_rows;
}
// x[r * 16 + c] = p[r * rs + c * cs]: a 16 x 16 operand read with the layout's strides.
template <class F, class T>
void load16(F& f, const T* p, unsigned rs, unsigned cs) {
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 16; ++c) f.x[r * 16 + c] = ld(p + r * rs + c * cs);
}
template <class Use, class T>
void load_matrix_sync(fragment<Use, 16, 16, 16, T, row_major>& f, const T* p, unsigned ldm) {
  check_ptr(p, ldm, 2, false);
  load16(f, p, ldm, 1);
}
template <class Use, class T>
void load_matrix_sync(fragment<Use, 16, 16, 16, T, col_major>& f, const T* p, unsigned ldm) {
  check_ptr(p, ldm, 2, true);
  load16(f, p, 1, ldm);
}
// An accumulator fragment: lane L owns the elements e = L (mod 32), as store_matrix_sync writes them;
// the lanes' parts are exchanged through emulator-private memory.
inline float* acc_stage() {
  static float st[32][256];
  return st[threadIdx.x / 32];
}
inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float>& f, const float* p, unsigned ldm, layout_t l) {
  check_ptr(p, ldm, 4, false);
  if (l != mem_row_major) std::abort();
  const int lane = threadIdx.x & 31;
  float* s = acc_stage();
  for (int e = lane; e < 256; e += 32) s[e] = p[(e / 16) * ldm + e % 16];
  emu::tl_block->wbar[threadIdx.x / 32]->arrive_and_wait();
  for (int e = 0; e < 256; ++e) f.x[e] = s[e];
  emu::tl_block->wbar[threadIdx.x / 32]->arrive_and_wait();
}
inline void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 16, float>& f, unsigned ldm, layout_t l) {
  check_ptr(p, ldm, 4, false);
  if (l != mem_row_major) std::abort();
  const int lane = threadIdx.x & 31;
  for (int e = lane; e < 256; e += 32) p[(e / 16) * ldm + e % 16] = f.x[e];
}
inline void fill_fragment(fragment<accumulator, 16, 16, 16, float>& f, float v) {
  for (auto& x : f.x) x = v;
}
template <class A, class B>
void mma_sync(fragment<accumulator, 16, 16, 16, float>& d, const A& a, const B& b,
              const fragment<accumulator, 16, 16, 16, float>& c) {
  float r[256];
  for (int m = 0; m < 16; ++m)
    for (int n = 0; n < 16; ++n) {
      float s = c.x[m * 16 + n];
      for (int k = 0; k < 16; ++k) s += a.x[m * 16 + k] * b.x[k * 16 + n];
      r[m * 16 + n] = s;
    }
  std::memcpy(d.x, r, sizeof r);
}
}  // namespace nvcuda::wmma

#include "cuda_emu/mma_emulation.h"
#include "cuda_emu/wgmma_emulation.h"
