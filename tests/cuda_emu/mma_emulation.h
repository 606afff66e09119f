// The emulation of src/backend/cuda/mma_sync.cuh (included by cuda_emulation.h): mma.m16n8k16,
// ldmatrix .x4 (and .trans) and cp.async, by the layouts that header documents. The warp-collective
// ones exchange every lane's registers or address through the warp's stage, so a lane's result is
// built from the other lanes' operands exactly as the hardware's; every ldmatrix row address is
// checked for 16-byte alignment and for lying inside the block's shared memory. cp.async copies
// are queued per thread and performed at cp_async_wait; their destination holds NaN until then,
// so a read before the wait (or a missing wait) gives a wrong result.
#pragma once

namespace cs::cuda::ptx {

inline uint16_t bits16(const bf16& v) { return v.b; }
inline uint16_t bits16(const f16& v) {
  uint16_t u;
  std::memcpy(&u, &v.h, 2);
  return u;
}
template <typename T>
T from_bits16(uint16_t u) {
  T v;
  std::memcpy(&v, &u, 2);
  return v;
}
template <typename T>
float half_lo(uint32_t r) { return from_bits16<T>(uint16_t(r & 0xffffu)).f(); }
template <typename T>
float half_hi(uint32_t r) { return from_bits16<T>(uint16_t(r >> 16)).f(); }

template <typename T>
uint32_t pack2(float lo, float hi) {
  return uint32_t(bits16(T(lo))) | (uint32_t(bits16(T(hi))) << 16);
}
template <typename T>
float unpack_lo(uint32_t r) { return half_lo<T>(r); }
template <typename T>
float unpack_hi(uint32_t r) { return half_hi<T>(r); }

// The warp's stage for this lane's next exchange (every lane of a warp makes the same exchanges).
inline thread_local unsigned tl_exchanges = 0;
inline emu::WarpStage& stage() { return emu::tl_block->ws[threadIdx.x / 32][tl_exchanges++ & 1]; }

template <typename T>
void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  const int lane = threadIdx.x & 31;
  emu::WarpStage& w = stage();
  for (int i = 0; i < 4; ++i) w.a[lane][i] = a[i], w.c[lane][i] = d[i];
  w.b[lane][0] = b0, w.b[lane][1] = b1;
  __syncwarp();
  // A(r, k) and B(k, c) read from the lane and register the layouts put them in.
  auto A = [&](int r, int k) {
    const uint32_t v = w.a[(r & 7) * 4 + (k & 7) / 2][(r >> 3) + 2 * (k >> 3)];
    return (k & 1) ? half_hi<T>(v) : half_lo<T>(v);
  };
  auto B = [&](int k, int c) {
    const uint32_t v = w.b[c * 4 + (k & 7) / 2][k >> 3];
    return (k & 1) ? half_hi<T>(v) : half_lo<T>(v);
  };
  const int g = lane >> 2, t = lane & 3;
  float out[4];
  for (int i = 0; i < 4; ++i) {
    const int r = g + 8 * (i >> 1), c = 2 * t + (i & 1);
    float acc = w.c[lane][i];
    for (int k = 0; k < 16; ++k) acc += A(r, k) * B(k, c);
    out[i] = acc;
  }
  for (int i = 0; i < 4; ++i) d[i] = out[i];
}

inline void check_row(const void* p) {
  auto c = static_cast<const unsigned char*>(p);
  if (reinterpret_cast<uintptr_t>(p) % 16) emu::bad_align++;
  if (c < emu::g_smem_lo || c + 16 > emu::g_smem_hi) emu::bad_range++;
}

// trans: register i gets matrix i's (rows 2t, 2t+1; col g), else its (row g; cols 2t, 2t+1).
inline void ldsm(uint32_t (&r)[4], const void* p, bool trans) {
  const int lane = threadIdx.x & 31;
  emu::WarpStage& w = stage();
  check_row(p);
  w.p[lane] = p;
  __syncwarp();
  const int g = lane >> 2, t = lane & 3;
  for (int i = 0; i < 4; ++i) {
    uint16_t lo, hi;
    if (trans) {
      const auto* r0 = static_cast<const uint16_t*>(w.p[i * 8 + 2 * t]);
      const auto* r1 = static_cast<const uint16_t*>(w.p[i * 8 + 2 * t + 1]);
      std::memcpy(&lo, r0 + g, 2);
      std::memcpy(&hi, r1 + g, 2);
    } else {
      const auto* row = static_cast<const uint16_t*>(w.p[i * 8 + g]);
      std::memcpy(&lo, row + 2 * t, 2);
      std::memcpy(&hi, row + 2 * t + 1, 2);
    }
    r[i] = uint32_t(lo) | (uint32_t(hi) << 16);
  }
}
inline void ldsm_x4(uint32_t (&r)[4], const void* p) { ldsm(r, p, false); }
inline void ldsm_x4_t(uint32_t (&r)[4], const void* p) { ldsm(r, p, true); }

struct AsyncCopy {
  void* dst;
  const void* src;
};
inline thread_local std::vector<AsyncCopy> tl_open;                  // issued, not yet committed
inline thread_local std::vector<std::vector<AsyncCopy>> tl_groups;  // committed, oldest first

inline void cp_async16(void* dst, const void* src) {
  auto c = static_cast<unsigned char*>(dst);
  if (reinterpret_cast<uintptr_t>(dst) % 16 || reinterpret_cast<uintptr_t>(src) % 16) emu::bad_align++;
  if (c < emu::g_smem_lo || c + 16 > emu::g_smem_hi) emu::bad_range++;
  std::memset(dst, 0xff, 16);  // undefined until the copy completes
  tl_open.push_back({dst, src});
}
inline void cp_async_commit() {
  tl_groups.push_back(std::move(tl_open));
  tl_open.clear();
}
template <int N>
void cp_async_wait() {
  while (tl_groups.size() > size_t(N)) {
    for (const AsyncCopy& c : tl_groups.front()) std::memcpy(c.dst, c.src, 16);
    tl_groups.erase(tl_groups.begin());
  }
}
// Copies a thread issued and never waited for (a kernel must leave none behind).
inline size_t pending_copies() {
  size_t n = tl_open.size();
  for (const auto& g : tl_groups) n += g.size();
  return n;
}

}  // namespace cs::cuda::ptx
