// Launching a kernel's text under the emulation (cuda_emulation.h): every block of a grid, one at
// a time, each of its CUDA threads a fiber on the calling thread, with fresh NaN-filled dynamic
// shared memory. The emulation's per-thread state (threadIdx and the rest, the queues of cp.async
// copies and wgmma products) is thread_local, and is swapped with the fiber's own around each run
// of a fiber, so that every CUDA thread sees its own.
#pragma once
#include <sys/mman.h>

#include "cuda_emu/cuda_emulation.h"

namespace emu {

inline std::atomic<long> left_in_flight{0};  // cp.async copies or wgmma products issued and never waited for

// A CUDA thread's copy of the emulation's thread_local state while another runs.
struct ThreadState {
  uint3e thread_idx, block_idx, block_dim, grid_dim;
  unsigned char* smem = nullptr;
  Block* block = nullptr;
  unsigned exchanges = 0, wg_exchanges = 0;
  std::vector<cs::cuda::ptx::AsyncCopy> open;
  std::vector<std::vector<cs::cuda::ptx::AsyncCopy>> groups;
  std::vector<cs::cuda::ptx::WgOp> wg_open;
  std::vector<std::vector<cs::cuda::ptx::WgOp>> wg_groups;
};
// Exchanges the thread_locals with st (twice restores them).
inline void swap_state(ThreadState& st) {
  namespace ptx = cs::cuda::ptx;
  std::swap(threadIdx, st.thread_idx);
  std::swap(blockIdx, st.block_idx);
  std::swap(blockDim, st.block_dim);
  std::swap(gridDim, st.grid_dim);
  std::swap(tl_smem, st.smem);
  std::swap(tl_block, st.block);
  std::swap(ptx::tl_exchanges, st.exchanges);
  std::swap(ptx::tl_wg_exchanges, st.wg_exchanges);
  std::swap(ptx::tl_open, st.open);
  std::swap(ptx::tl_groups, st.groups);
  std::swap(ptx::tl_wg_open, st.wg_open);
  std::swap(ptx::tl_wg_groups, st.wg_groups);
}

// The fibers' stacks, kept between launches (per calling thread): mapped on demand, touched
// only as deep as a kernel goes. The lowest page of each is a guard (no access): a kernel that
// overflows its stack faults there instead of writing over the next fiber's frames.
constexpr size_t kFiberStack = size_t(256) << 10, kGuardPage = size_t(64) << 10;  // a page on any x86-64 / arm64 page size
inline char* fiber_stacks(int n) {
  thread_local char* base = nullptr;
  thread_local int have = 0;
  if (n > have) {
    if (base) munmap(base, size_t(have) * kFiberStack);
    void* p = mmap(nullptr, size_t(n) * kFiberStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED) {
      std::fprintf(stderr, "[emulation] cannot map the stacks of %d fibers\n", n);
      std::abort();
    }
    base = static_cast<char*>(p);
    have = n;
    for (int i = 0; i < n; ++i)
      if (mprotect(base + size_t(i) * kFiberStack, kGuardPage, PROT_NONE) != 0) {
        std::fprintf(stderr, "[emulation] cannot protect the guard page of fiber %d's stack\n", i);
        std::abort();
      }
  }
  return base;
}

inline thread_local const std::function<void()>* tl_kernel = nullptr;

inline void fiber_entry() {
  Scheduler* s = tl_sched;
  asan_finish_switch(nullptr, &s->main_stack, &s->main_stack_size);
  (*tl_kernel)();
  left_in_flight += long(cs::cuda::ptx::pending_copies() + cs::cuda::ptx::pending_wgmma());
  s->cur->done = true;
  ++s->progress;
  asan_start_switch(nullptr, s->main_stack, s->main_stack_size);  // this fiber's stack is done with
  switch_context(s->cur->ctx, s->main);                            // never resumed
}

inline void make_fiber(Fiber& f, char* stack) {
  f.done = false;
  f.stack = stack + kGuardPage;
  f.stack_size = kFiberStack - kGuardPage;
  make_context(f.ctx, f.stack, f.stack_size, fiber_entry);
}
// Runs fiber f until it waits at a barrier or ends.
inline void run_fiber(Scheduler& s, Fiber& f) {
  s.cur = &f;
  void* fake = nullptr;
  asan_start_switch(&fake, f.stack, f.stack_size);
  switch_context(s.main, f.ctx);
  asan_finish_switch(fake, nullptr, nullptr);
}

// Runs fn over grid (gx, gy) blocks of nthreads threads with smem_bytes of fresh (NaN-filled) shared memory.
inline void launch(unsigned gx, unsigned gy, int nthreads, size_t smem_bytes, const std::function<void()>& fn) {
  unsigned char* smem = static_cast<unsigned char*>(std::aligned_alloc(128, std::max<size_t>(128, (smem_bytes + 127) / 128 * 128)));
  g_smem_lo = smem;
  g_smem_hi = smem + smem_bytes;
  FiberBarrier bar{nthreads};
  std::vector<FiberBarrier> warp_bars(size_t(nthreads / 32), FiberBarrier{32});
  std::vector<FiberBarrier> group_bars(size_t(nthreads / 128), FiberBarrier{128});
  auto blk = std::make_unique<Block>();
  blk->bar = &bar;
  for (size_t w = 0; w < warp_bars.size(); ++w) blk->wbar[w] = &warp_bars[w];
  for (size_t w = 0; w < group_bars.size(); ++w) blk->gbar[w] = &group_bars[w];
  char* stacks = fiber_stacks(nthreads);
  std::vector<Fiber> fibers(static_cast<size_t>(nthreads));
  std::vector<ThreadState> states(static_cast<size_t>(nthreads));
  Scheduler sched;
  Scheduler* outer = tl_sched;
  const std::function<void()>* outer_kernel = tl_kernel;
  tl_sched = &sched;
  tl_kernel = &fn;
  for (unsigned y = 0; y < gy; ++y)
    for (unsigned x = 0; x < gx; ++x) {
      std::memset(smem, 0xff, smem_bytes);  // NaN in f32, bf16 and f16
      for (int t = 0; t < nthreads; ++t) {
        ThreadState& st = states[size_t(t)];
        st = ThreadState{};
        st.thread_idx.x = unsigned(t);
        st.block_idx.x = x, st.block_idx.y = y;
        st.block_dim.x = unsigned(nthreads);
        st.grid_dim.x = gx, st.grid_dim.y = gy;
        st.smem = smem;
        st.block = blk.get();
        make_fiber(fibers[size_t(t)], stacks + size_t(t) * kFiberStack);
      }
      // Passes over the threads, alternately ascending and descending, each thread run until it
      // waits at a barrier or ends; a pass in which none arrives anywhere or ends is a deadlock.
      for (int left = nthreads, pass = 0; left > 0; ++pass) {
        const long before = sched.progress;
        for (int i = 0; i < nthreads; ++i) {
          const int t = pass % 2 ? nthreads - 1 - i : i;
          Fiber& f = fibers[size_t(t)];
          if (f.done) continue;
          swap_state(states[size_t(t)]);
          run_fiber(sched, f);
          swap_state(states[size_t(t)]);
          if (f.done) --left;
        }
        if (left > 0 && sched.progress == before) {
          std::fprintf(stderr, "[emulation] deadlock: block (%u, %u) has threads waiting at a barrier that the "
                               "others never reach\n", x, y);
          std::abort();
        }
      }
    }
  tl_sched = outer;
  tl_kernel = outer_kernel;
  std::free(smem);
}

}  // namespace emu
