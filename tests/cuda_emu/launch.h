// Launching a kernel's text under the emulation (cuda_emulation.h): every block of a grid, one
// at a time, on one std::thread per CUDA thread, with fresh NaN-filled dynamic shared memory.
#pragma once
#include "cuda_emu/cuda_emulation.h"

namespace emu {

inline std::atomic<long> left_in_flight{0};  // cp.async copies or wgmma products issued and never waited for

// Runs fn over grid (gx, gy) blocks of nthreads threads with smem_bytes of fresh (NaN-filled) shared memory.
inline void launch(unsigned gx, unsigned gy, int nthreads, size_t smem_bytes, const std::function<void()>& fn) {
  unsigned char* smem = static_cast<unsigned char*>(std::aligned_alloc(128, std::max<size_t>(128, (smem_bytes + 127) / 128 * 128)));
  g_smem_lo = smem;
  g_smem_hi = smem + smem_bytes;
  std::barrier<> bar(nthreads);
  Block blk;
  blk.bar = &bar;
  std::vector<std::unique_ptr<std::barrier<>>> wb;
  for (int w = 0; w < nthreads / 32; ++w) {
    wb.emplace_back(new std::barrier<>(32));
    blk.wbar[w] = wb.back().get();
  }
  for (int w = 0; w < nthreads / 128; ++w) {
    wb.emplace_back(new std::barrier<>(128));
    blk.gbar[w] = wb.back().get();
  }
  std::vector<std::thread> th;
  for (int t = 0; t < nthreads; ++t)
    th.emplace_back([&, t] {
      threadIdx.x = t;
      blockDim.x = nthreads;
      gridDim.x = gx;
      gridDim.y = gy;
      tl_block = &blk;
      tl_smem = smem;
      for (unsigned y = 0; y < gy; ++y)
        for (unsigned x = 0; x < gx; ++x) {
          bar.arrive_and_wait();
          if (t == 0) std::memset(smem, 0xff, smem_bytes);  // NaN in f32, bf16 and f16
          bar.arrive_and_wait();
          blockIdx.x = x;
          blockIdx.y = y;
          fn();
          left_in_flight += long(cs::cuda::ptx::pending_copies() + cs::cuda::ptx::pending_wgmma());
        }
    });
  for (auto& x : th) x.join();
  std::free(smem);
}

}  // namespace emu
