// The emulation of src/backend/cuda/wgmma.cuh (included by cuda_emulation.h): wgmma.mma_async
// m64nNk16 with A from shared memory or registers and B from shared memory, from the PTX ISA's
// definitions, written independently of the kernels' own layout helpers:
//  - registers: D of warp w, lane (g, t): rows 16w + g (+8), cols 8j + 2t (+1); A in registers as
//    mma.sync m16n8k16's A on each warp's 16 rows;
//  - descriptors: start address, LBO, SBO (bits 0-13, 16-29, 32-45, each >> 4), swizzle mode (bits
//    62-63, only 128-byte here) and base offset (bits 49-51, 0 here), decoded through the canonical
//    layouts (K-major 128B: ((8,m),(T,2k)) : ((8T,SBO),(1,T)); MN-major 128B: ((T,8,m),(8,k)) :
//    ((1,T,LBO),(8T,SBO)); T = 8 16-bit elements), then the swizzle of the address bits (bits 4-6
//    ^= bits 7-9). The address is the shared-memory window's (smem_addr), which starts here at an
//    offset that is not a multiple of 1024, so a kernel that does not align its tiles fails.
// The warpgroup's 128 threads exchange their A registers and descriptors through a stage (every
// thread must pass the same descriptors); the product is computed at issue and delivered at
// wgmma_wait0: until then the accumulators hold NaN, so a read before the wait gives a wrong
// result. Not checked: the fences (wgmma.fence, fence.proxy.async), which order the hardware's
// asynchronous proxy and have no meaning for threads that compute at issue.
#pragma once

namespace cs::cuda::ptx {

constexpr uint32_t kEmuWindowBase = 0x480;  // the window address of the block's shared memory
inline uint32_t smem_addr(const void* p) {
  return uint32_t(static_cast<const unsigned char*>(p) - emu::g_smem_lo) + kEmuWindowBase;
}

inline void wgmma_fence() {}
inline void wgmma_commit() {}
inline void fence_proxy_async() {}
template <int N>
void fence_regs(float (&)[N][4]) {}
template <int N>
void fence_regs(const uint32_t (&)[N][4]) {}

// The 16-bit element (mn, k) of a descriptor's operand (mn: the M or N index).
inline const uint16_t* desc_elem(uint64_t desc, bool mn_major, int mn, int k) {
  const uint32_t start = uint32_t(desc & 0x3FFF) << 4, lbo = uint32_t((desc >> 16) & 0x3FFF) << 4,
                 sbo = uint32_t((desc >> 32) & 0x3FFF) << 4;
  if ((desc >> 62) != 1 || ((desc >> 49) & 7) != 0) emu::bad_desc++;
  const uint32_t off = mn_major ? uint32_t(mn % 64) * 2 + uint32_t(mn / 64) * lbo + uint32_t(k % 8) * 128 + uint32_t(k / 8) * sbo
                                : uint32_t(mn % 8) * 128 + uint32_t(mn / 8) * sbo + uint32_t(k) * 2;
  uint32_t addr = start + off;
  addr ^= ((addr >> 7) & 7u) << 4;
  const unsigned char* p = emu::g_smem_lo + (int64_t(addr) - int64_t(kEmuWindowBase));
  if (p < emu::g_smem_lo || p + 2 > emu::g_smem_hi) {
    emu::bad_range++;
    static const uint16_t nan_bits = 0xffff;
    return &nan_bits;
  }
  return reinterpret_cast<const uint16_t*>(p);
}

struct PendingAcc {
  float* d;
  std::vector<float> v;
};
inline thread_local std::vector<PendingAcc> tl_wg_pending;  // issued, not yet waited for
inline thread_local unsigned tl_wg_exchanges = 0;

template <typename T, int N>
void wgmma(float (&d)[N / 8][4], const uint32_t* a, uint64_t da, uint64_t db, bool b_mn_major, bool accumulate) {
  const int tid = int(threadIdx.x % 128), warp = tid / 32, lane = tid % 32;
  emu::WgStage& s = emu::tl_block->wg[threadIdx.x / 128][tl_wg_exchanges++ & 1];
  s.da[tid] = da;
  s.db[tid] = db;
  for (int i = 0; i < 4; ++i) s.a[tid][i] = a ? a[i] : 0u;
  emu::tl_block->gbar[threadIdx.x / 128]->arrive_and_wait();
  if (tid == 0)
    for (int i = 1; i < 128; ++i)
      if (s.da[i] != da || s.db[i] != db) emu::bad_desc++;
  auto half = [](uint16_t u) { return from_bits16<T>(u).f(); };
  auto A = [&](int row, int k) {
    if (!a) return half(*desc_elem(da, false, row, k));
    const int r = row % 16, src = (row / 16) * 32 + (r % 8) * 4 + (k % 8) / 2;
    const uint32_t v = s.a[src][(r / 8) + 2 * (k / 8)];
    return (k & 1) ? half_hi<T>(v) : half_lo<T>(v);
  };
  // The accumulator's current value: a pending result for the same registers, else the registers.
  PendingAcc* pend = nullptr;
  for (auto& p : tl_wg_pending)
    if (p.d == &d[0][0]) pend = &p;
  std::vector<float> out(N / 2);
  const int g = lane / 4, t = lane % 4;
  for (int j = 0; j < N / 8; ++j)
    for (int e = 0; e < 4; ++e) {
      const int row = 16 * warp + g + 8 * (e >> 1), col = 8 * j + 2 * t + (e & 1);
      float acc = accumulate ? (pend ? pend->v[j * 4 + e] : d[j][e]) : 0.f;
      for (int k = 0; k < 16; ++k) acc += A(row, k) * half(*desc_elem(db, b_mn_major, col, k));
      out[j * 4 + e] = acc;
    }
  if (pend) pend->v = out;
  else tl_wg_pending.push_back({&d[0][0], out});
  for (int j = 0; j < N / 8; ++j)
    for (int e = 0; e < 4; ++e) d[j][e] = NAN;  // undefined until the wait
  emu::tl_block->gbar[threadIdx.x / 128]->arrive_and_wait();  // the stage is read before its reuse
}

template <typename T>
void wgmma_ss_n64(float (&d)[8][4], uint64_t da, uint64_t db, bool accumulate) {
  wgmma<T, 64>(d, nullptr, da, db, false, accumulate);
}
template <typename T, int N>
void wgmma_rs_t(float (&d)[N / 8][4], const uint32_t (&a)[4], uint64_t db) {
  wgmma<T, N>(d, a, 0, db, true, true);
}
inline void wgmma_wait0() {
  for (auto& p : tl_wg_pending) std::copy(p.v.begin(), p.v.end(), p.d);
  tl_wg_pending.clear();
}
inline size_t pending_wgmma() { return tl_wg_pending.size(); }

}  // namespace cs::cuda::ptx
