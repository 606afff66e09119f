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
// thread must pass the same descriptors, and their A registers are taken then); the product is
// computed when it completes, at the wait_group after its commit, from shared memory as it is then:
// until then the accumulators hold NaN, so a read of them before the wait, a tile overwritten
// before the wait, or an op never committed gives a wrong result or a leftover; an op's A
// registers written before it completes are counted (a read of them, also undefined, is not seen).
// Not checked: the fences (wgmma.fence, fence.proxy.async), which order the hardware's
// asynchronous proxy and have no meaning for threads that compute at issue.
#pragma once

namespace cs::cuda::ptx {

constexpr uint32_t kEmuWindowBase = 0x480;  // the window address of the block's shared memory
inline uint32_t smem_addr(const void* p) {
  return uint32_t(static_cast<const unsigned char*>(p) - emu::g_smem_lo) + kEmuWindowBase;
}

inline void wgmma_fence() {}
inline void fence_proxy_async() {}
template <int N>
void fence_regs(float (&)[N][4]) {}
template <int N>
void fence_regs(const uint32_t (&)[N][4]) {}
template <int N>
void keep_regs(uint32_t (&)[N][4]) {}

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

// One issued wgmma: every operand it reads from registers, taken at issue (the warpgroup's A
// registers, the accumulator when it starts a chain); shared memory is read when it completes.
struct WgOp {
  float* d;                     // the issuing thread's accumulator registers
  int n;                        // N
  std::vector<uint32_t> a;      // the warpgroup's A registers (128 x 4), empty for a descriptor A
  uint64_t da, db;
  bool b_mn_major, accumulate, chained;  // chained: D's input is an earlier pending op's result
  std::vector<float> d_in;      // D's registers at issue (unchained)
  float (*half)(uint16_t);      // T's 16-bit decode
  const uint32_t* a_regs;       // the issuing thread's A registers (register A), and their value at issue:
  uint32_t a_at_issue[4];       // a write to them before the op completes is counted (bad_areg)
};
inline thread_local std::vector<WgOp> tl_wg_open;                  // issued, not yet committed
inline thread_local std::vector<std::vector<WgOp>> tl_wg_groups;  // committed, oldest first
inline thread_local unsigned tl_wg_exchanges = 0;

template <typename T>
float half16(uint16_t u) { return from_bits16<T>(u).f(); }

// Computes an op now (at its completion): D = A B (+ D's input), from shared memory as it is now.
inline void wg_complete(const WgOp& op, std::vector<std::pair<float*, std::vector<float>>>& results) {
  if (op.a_regs && !std::equal(op.a_at_issue, op.a_at_issue + 4, op.a_regs)) emu::bad_areg++;
  const int tid = int(threadIdx.x % 128), warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  const std::vector<float>* prev = nullptr;
  for (auto& r : results)
    if (r.first == op.d) prev = &r.second;
  auto A = [&](int row, int k) {
    if (op.a.empty()) return op.half(*desc_elem(op.da, false, row, k));
    const int r = row % 16, src = (row / 16) * 32 + (r % 8) * 4 + (k % 8) / 2;
    const uint32_t v = op.a[size_t(src) * 4 + size_t((r / 8) + 2 * (k / 8))];
    return op.half(uint16_t((k & 1) ? v >> 16 : v & 0xffffu));
  };
  std::vector<float> out(size_t(op.n / 2));
  for (int j = 0; j < op.n / 8; ++j)
    for (int e = 0; e < 4; ++e) {
      const int row = 16 * warp + g + 8 * (e >> 1), col = 8 * j + 2 * t + (e & 1);
      const size_t i = size_t(j * 4 + e);
      // chained: the earlier op's result, from this wait or (completed at an earlier wait) the registers
      float acc = !op.accumulate ? 0.f : op.chained ? (prev ? (*prev)[i] : op.d[i]) : op.d_in[i];
      for (int k = 0; k < 16; ++k) acc += A(row, k) * op.half(*desc_elem(op.db, op.b_mn_major, col, k));
      out[i] = acc;
    }
  for (auto& r : results)
    if (r.first == op.d) {
      r.second = std::move(out);
      return;
    }
  results.push_back({op.d, std::move(out)});
}

template <typename T, int N>
void wgmma(float (&d)[N / 8][4], const uint32_t* a, uint64_t da, uint64_t db, bool b_mn_major, bool accumulate) {
  const int tid = int(threadIdx.x % 128);
  emu::WgStage& s = emu::tl_block->wg[threadIdx.x / 128][tl_wg_exchanges++ & 1];
  s.da[tid] = da;
  s.db[tid] = db;
  for (int i = 0; i < 4; ++i) s.a[tid][i] = a ? a[i] : 0u;
  emu::tl_block->gbar[threadIdx.x / 128]->arrive_and_wait();
  if (tid == 0)
    for (int i = 1; i < 128; ++i)
      if (s.da[i] != da || s.db[i] != db) emu::bad_desc++;
  WgOp op{&d[0][0], N, {}, da, db, b_mn_major, accumulate, false, {}, &half16<T>, a, {}};
  if (a) std::copy(a, a + 4, op.a_at_issue);
  if (a) op.a.assign(&s.a[0][0], &s.a[0][0] + 128 * 4);
  for (const WgOp& o : tl_wg_open) op.chained |= o.d == op.d;
  for (const auto& grp : tl_wg_groups)
    for (const WgOp& o : grp) op.chained |= o.d == op.d;
  if (!op.chained) op.d_in.assign(&d[0][0], &d[0][0] + N / 2);
  tl_wg_open.push_back(std::move(op));
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
inline void wgmma_commit() {
  tl_wg_groups.push_back(std::move(tl_wg_open));
  tl_wg_open.clear();
}
// wgmma.wait_group N: the oldest committed groups complete, in order, until at most N are left,
// reading shared memory now (a tile overwritten before the wait gives a wrong result); their
// results land in the registers.
template <int N>
void wgmma_wait() {
  std::vector<std::pair<float*, std::vector<float>>> results;
  while (tl_wg_groups.size() > size_t(N)) {
    for (const WgOp& op : tl_wg_groups.front()) wg_complete(op, results);
    tl_wg_groups.erase(tl_wg_groups.begin());
  }
  for (auto& [d, v] : results) std::copy(v.begin(), v.end(), d);
}
// Ops issued and never waited for (or never committed): a kernel must leave none behind.
inline size_t pending_wgmma() {
  size_t n = tl_wg_open.size();
  for (const auto& g : tl_wg_groups) n += g.size();
  return n;
}

}  // namespace cs::cuda::ptx
