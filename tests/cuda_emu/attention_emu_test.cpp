// The CUDA flash-attention kernels (src/backend/cuda/attention_tc_kernels.cuh: the tensor-core
// forward, dK/dV and dQ; attention_kernels.cuh: the portable ones), their own text, run on the CPU under the emulation of cuda_emulation.h (one thread per CUDA
// thread, wmma by its documented layouts) and compared with a float64 reference of causal
// attention: bf16 and f16, head dims 32, 64 and 128, sequence lengths around the 64-row tiles,
// ALiBi, and packed samples whose ids repeat in later runs or last one token. It checks what a
// GPU would otherwise be needed for: the fragments' layouts and offsets, the masks, the online
// softmax, the shared-memory carve-up (alignment and bounds of every wmma access, checked) and the
// barriers. It cannot check speed or the hardware's own rounding.
#include <gtest/gtest.h>

#include "cuda_emu/launch.h"
#include "backend/cuda/attention_kernels.cuh"
#include "backend/cuda/attention_mma_backward.cuh"
#include "backend/cuda/attention_mma_kernels.cuh"
#include "backend/cuda/attention_tc_kernels.cuh"
#include "backend/cuda/attention_wgmma.cuh"

namespace {
using cs::cuda::FlashArgs;
using emu::launch;
namespace tc = cs::cuda::tc;
namespace portable = cs::cuda::portable;
namespace fa2 = cs::cuda::fa2;

// Which kernels a case runs: the tensor-core ones (bf16 / f16, HD 32, 64, 128), register-resident on
// mma.sync (kMma) or on wgmma (kWgmma, HD 64 and 128), or on wmma (kTensorCore); or the portable ones.
enum class Kernels { kTensorCore, kMma, kWgmma, kPortable };

// Errors of one case against the float64 reference, relative to the reference's largest value
// (lse: absolute), and whether any output was not finite.
struct Errors {
  double o = 0, lse = 0, dq = 0, dk = 0, dv = 0;
  bool nonfinite = false;
};

// seg_mode: 0 none; 1 ids 0, 1, 0, 1, ... in runs of 37 (a later run repeats an id: a new sample);
// 2 runs of 5, 65, 1 (a one-key sample) and then 50-long runs.
template <typename T, int HD, Kernels kKernels = Kernels::kTensorCore>
Errors run_case(int B, int H, int64_t t, bool use_slopes, int seg_mode, uint64_t seed, float amp,
                float v_amp = 1.f, float do_amp = 1.f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  const int64_t n = int64_t(B) * H * t * HD;
  std::vector<T> q(n), k(n), v(n), dout(n), o(n, T(12345.f));
  for (int64_t i = 0; i < n; ++i) {
    q[i] = T(nd(rng) * amp);
    k[i] = T(nd(rng) * amp);
    v[i] = T(nd(rng) * v_amp);
    dout[i] = T(nd(rng) * do_amp);
  }
  std::vector<float> slopes(H);
  for (int h = 0; h < H; ++h) slopes[h] = 0.5f / float(1 << h);
  // segment ids -> run indices (as segment_runs_kernel)
  std::vector<int32_t> runs(size_t(B) * t);
  for (int b = 0; b < B; ++b) {
    std::vector<int32_t> ids(t);
    for (int64_t i = 0; i < t; ++i) {
      if (seg_mode == 1) ids[i] = int32_t((i / 37) % 2);           // ids repeat across runs
      else if (seg_mode == 2) ids[i] = int32_t(i < 5 ? 0 : i < 70 ? 1 : i < 71 ? 2 : 3 + (i / 50) % 2);
      else ids[i] = 0;
    }
    int32_t r = 0;
    for (int64_t i = 0; i < t; ++i) {
      if (i > 0 && ids[i] != ids[i - 1]) ++r;
      runs[size_t(b) * t + i] = r;
    }
  }
  const float scale = 1.f / std::sqrt(float(HD));
  std::vector<float> lse(size_t(B) * H * t, 777.f);
  FlashArgs<T> a{q.data(), k.data(), v.data(), o.data(), nullptr, lse.data(),
                 use_slopes ? slopes.data() : nullptr, seg_mode ? runs.data() : nullptr,
                 t, t, 0, t * HD, t * HD, HD, H, scale};
  std::vector<float> delta(size_t(B) * H * t);
  std::vector<float> dq(n, 999.f), dk(n, 999.f), dv(n, 999.f);
  FlashArgs<T> b = a;
  b.o = nullptr;
  b.dout = dout.data();
  if constexpr (kKernels != Kernels::kPortable) {
    const unsigned gx = unsigned(B * H), gy = unsigned((t + tc::kB - 1) / tc::kB);
    if constexpr (kKernels == Kernels::kMma) {
      using E = fa2::SyncMma;
      launch(gx, unsigned((t + E::kBlockRows - 1) / E::kBlockRows), E::kThreads, fa2::forward_smem<HD, E>(),
             [&] { fa2::fa2_forward_kernel<T, HD, E>(a); });
    } else if constexpr (kKernels == Kernels::kWgmma) {  // the pipelined forward (attention_wgmma.cuh)
      using E = fa2::WgMma;
      launch(gx, unsigned((t + E::kBlockRows - 1) / E::kBlockRows), E::kThreads, fa2::forward_smem<HD, E>(),
             [&] { fa2::wgmma_forward_kernel<T, HD>(a); });
    } else {
      launch(gx, gy, tc::kTcThreads, tc::forward_smem<HD>(), [&] { tc::tc_forward_kernel<T, HD>(a); });
    }
    for (int64_t r = 0; r < int64_t(B) * H * t; ++r) {  // as attention_delta_kernel
      float s = 0.f;
      for (int d = 0; d < HD; ++d) s += ld(&o[r * HD + d]) * ld(&dout[r * HD + d]);
      delta[r] = s;
    }
    if constexpr (kKernels == Kernels::kMma || kKernels == Kernels::kWgmma) {  // key tiles for dK, dV; query tiles for dQ
      using E = std::conditional_t<kKernels == Kernels::kMma, fa2::SyncMma, fa2::WgMma>;
      launch(gx, unsigned((t + E::kBlockRows - 1) / E::kBlockRows), E::kThreads, fa2::dkdv_smem<HD, E>(),
             [&] { fa2::fa2_dkdv_kernel<T, HD, E>(b, delta.data(), dk.data(), dv.data()); });
      launch(gx, unsigned((t + E::kBlockRows - 1) / E::kBlockRows), E::kThreads, fa2::dq_smem<HD, E>(),
             [&] { fa2::fa2_dq_kernel<T, HD, E>(b, delta.data(), dq.data()); });
    } else {
      launch(gx, gy, tc::kTcThreads, tc::dkdv_smem<HD>(),
             [&] { tc::tc_dkdv_kernel<T, HD>(b, delta.data(), dk.data(), dv.data()); });
      launch(gx, gy, tc::kTcThreads, tc::dq_smem<HD>(), [&] { tc::tc_dq_kernel<T, HD>(b, delta.data(), dq.data()); });
    }
  } else {
    using cs::cuda::kTile;
    using cs::cuda::kThreads;
    constexpr int KD = (HD + 31) / 32 <= 1 ? 1 : (HD + 31) / 32 <= 2 ? 2 : (HD + 31) / 32 <= 4 ? 4 : 8;
    const unsigned gx = unsigned(B * H), gy = unsigned((t + kTile - 1) / kTile);
    launch(gx, gy, kThreads, portable::forward_smem_bytes(HD), [&] { portable::flash_forward_kernel<T, KD>(a); });
    const int64_t rows = int64_t(B) * H * t;
    launch(unsigned((rows + 7) / 8), 1, 256, 0,
           [&] { portable::attention_delta_kernel<T>(o.data(), dout.data(), rows, HD, delta.data()); });
    launch(gx, gy, kThreads, portable::dkdv_smem_bytes(HD),
           [&] { portable::attention_dkdv_kernel<T, KD>(b, delta.data(), dk.data(), dv.data()); });
    launch(gx, gy, kThreads, portable::dq_smem_bytes(HD),
           [&] { portable::attention_dq_kernel<T, KD>(b, delta.data(), dq.data()); });
  }

  // double reference
  double eo = 0, mo = 0, el = 0, eq = 0, mq = 0, ek = 0, mk = 0, ev = 0, mv = 0;
  bool nonfinite = false;
  for (int bh = 0; bh < B * H; ++bh) {
    const float slope = use_slopes ? slopes[bh % H] : 0.f;
    const int32_t* rr = runs.data() + size_t(bh / H) * t;
    auto Q = [&](int64_t i, int d) { return double(ld(&q[(bh * t + i) * HD + d])); };
    auto K = [&](int64_t i, int d) { return double(ld(&k[(bh * t + i) * HD + d])); };
    auto V = [&](int64_t i, int d) { return double(ld(&v[(bh * t + i) * HD + d])); };
    auto DO = [&](int64_t i, int d) { return double(ld(&dout[(bh * t + i) * HD + d])); };
    std::vector<double> P(size_t(t) * t, 0.0), O(size_t(t) * HD, 0.0), dQ(size_t(t) * HD, 0.0), dK(size_t(t) * HD, 0.0),
        dV(size_t(t) * HD, 0.0);
    for (int64_t i = 0; i < t; ++i) {
      double mx = -INFINITY;
      std::vector<double> s(t, -INFINITY);
      for (int64_t j = 0; j <= i; ++j) {
        if (seg_mode && rr[j] != rr[i]) continue;
        double dot = 0;
        for (int d = 0; d < HD; ++d) dot += Q(i, d) * K(j, d);
        s[j] = dot * scale + double(slope) * double(j - i);
        mx = std::max(mx, s[j]);
      }
      double l = 0;
      for (int64_t j = 0; j <= i; ++j) if (s[j] > -INFINITY) l += std::exp(s[j] - mx);
      const double L = mx + std::log(l);
      el = std::max(el, std::abs(L - double(lse[bh * t + i])));
      for (int64_t j = 0; j <= i; ++j) if (s[j] > -INFINITY) P[i * t + j] = std::exp(s[j] - L);
      for (int d = 0; d < HD; ++d) {
        double acc = 0;
        for (int64_t j = 0; j <= i; ++j) acc += P[i * t + j] * V(j, d);
        O[i * HD + d] = acc;
        const double got = ld(&o[(bh * t + i) * HD + d]);
        if (!std::isfinite(got)) nonfinite = true;
        eo = std::max(eo, std::abs(got - acc));
        mo = std::max(mo, std::abs(acc));
      }
    }
    for (int64_t i = 0; i < t; ++i) {
      double D = 0;
      for (int d = 0; d < HD; ++d) D += DO(i, d) * O[i * HD + d];
      for (int64_t j = 0; j <= i; ++j) {
        if (P[i * t + j] == 0) continue;
        double dp = 0;
        for (int d = 0; d < HD; ++d) dp += DO(i, d) * V(j, d);
        const double ds = P[i * t + j] * (dp - D);
        for (int d = 0; d < HD; ++d) {
          dV[j * HD + d] += P[i * t + j] * DO(i, d);
          dQ[i * HD + d] += scale * ds * K(j, d);
          dK[j * HD + d] += scale * ds * Q(i, d);
        }
      }
    }
    for (int64_t i = 0; i < t * HD; ++i) {
      const int64_t g = bh * t * HD + i;
      if (!std::isfinite(dq[g]) || !std::isfinite(dk[g]) || !std::isfinite(dv[g])) nonfinite = true;
      eq = std::max(eq, std::abs(dq[g] - dQ[i]));
      mq = std::max(mq, std::abs(dQ[i]));
      ek = std::max(ek, std::abs(dk[g] - dK[i]));
      mk = std::max(mk, std::abs(dK[i]));
      ev = std::max(ev, std::abs(dv[g] - dV[i]));
      mv = std::max(mv, std::abs(dV[i]));
    }
  }
  // Relative to the largest value, at least 1 (as tests/tolerances.h scales gradient tolerances):
  // with T = 1 dQ and dK are exactly 0 and only rounding is left.
  mo = std::max(mo, 1.0), mq = std::max(mq, 1.0), mk = std::max(mk, 1.0), mv = std::max(mv, 1.0);
  return {eo / mo, el, eq / mq, ek / mk, ev / mv, nonfinite};
}

// Limits from the measured errors (largest over this file's cases; o, dq, dk, dv relative to the
// largest value, at least 1; lse absolute), with a margin of 3x to 10x: bf16, which rounds P and dS
// to 8 bits before their products, 7.2e-3 and lse 1.5e-3; f16 (11 bits) 1.5e-3 and 2e-4; f32
// (portable kernels only) 8.4e-7 and 3e-6.
template <typename T>
void expect_close(const Errors& e) {
  const bool is_bf16 = std::is_same_v<T, bf16>, is_f16 = std::is_same_v<T, f16>;
  const double tol = is_bf16 ? 2.5e-2 : is_f16 ? 5e-3 : 1e-5;
  const double lse_tol = is_bf16 ? 1e-2 : is_f16 ? 1e-3 : 3e-5;
  EXPECT_FALSE(e.nonfinite);
  EXPECT_LT(e.o, tol);
  EXPECT_LT(e.lse, lse_tol);
  EXPECT_LT(e.dq, tol);
  EXPECT_LT(e.dk, tol);
  EXPECT_LT(e.dv, tol);
  EXPECT_EQ(emu::bad_align.load(), 0) << "a wmma pointer or ldm without the alignment wmma requires";
  EXPECT_EQ(emu::bad_range.load(), 0) << "a wmma, ldmatrix or cp.async access outside the block's shared memory";
  EXPECT_EQ(emu::left_in_flight.load(), 0) << "cp.async copies or wgmma products never waited for";
  EXPECT_EQ(emu::bad_desc.load(), 0) << "a wgmma descriptor unlike the kernels' layout, or differing across the warpgroup";
  EXPECT_EQ(emu::bad_areg.load(), 0) << "a running wgmma's A registers written before its wait";
}

TEST(TensorCoreAttentionEmulated, HeadDims32And64AroundTheTiles) {
  for (int64_t t : {1, 15, 64, 65, 130, 200, 260}) {
    SCOPED_TRACE("T " + std::to_string(t));
    expect_close<bf16>(run_case<bf16, 32>(2, 2, t, true, 2, 1 + t, 1.f));
    expect_close<f16>(run_case<f16, 32>(1, 2, t, false, 1, 2 + t, 2.f));
    expect_close<bf16>(run_case<bf16, 64>(1, 2, t, true, 1, 3 + t, 2.f));
    expect_close<f16>(run_case<f16, 64>(2, 1, t, true, 0, 4 + t, 1.f));
  }
}

TEST(TensorCoreAttentionEmulated, HeadDim128) {
  for (int64_t t : {17, 64, 129}) {
    SCOPED_TRACE("T " + std::to_string(t));
    expect_close<bf16>(run_case<bf16, 128>(1, 2, t, true, 2, 5 + t, 1.f));
    expect_close<f16>(run_case<f16, 128>(1, 1, t, false, 0, 6 + t, 3.f));
  }
}

// The register-resident kernels (attention_mma_kernels.cuh, attention_mma_backward.cuh).
TEST(MmaAttentionEmulated, AroundTheTilesAllHeadDims) {
  for (int64_t t : {1, 15, 64, 65, 130, 200, 260}) {
    SCOPED_TRACE("T " + std::to_string(t));
    expect_close<bf16>(run_case<bf16, 32, Kernels::kMma>(2, 2, t, true, 2, 41 + t, 1.f));
    expect_close<f16>(run_case<f16, 64, Kernels::kMma>(1, 2, t, false, 1, 42 + t, 2.f));
    expect_close<bf16>(run_case<bf16, 64, Kernels::kMma>(1, 2, t, true, 0, 43 + t, 2.f));
  }
  for (int64_t t : {17, 129}) {
    SCOPED_TRACE("T " + std::to_string(t));
    expect_close<bf16>(run_case<bf16, 128, Kernels::kMma>(1, 2, t, true, 2, 45 + t, 1.f));
    expect_close<f16>(run_case<f16, 128, Kernels::kMma>(1, 1, t, false, 0, 46 + t, 3.f));
  }
  // f16's range: dS scaled before it is rounded (as the wmma kernels).
  expect_close<f16>(run_case<f16, 128, Kernels::kMma>(1, 1, 64, false, 0, 47, 1.f, 4.f, 4000.f));
}

// The same kernels on wgmma (attention_wgmma.cuh): the swizzled tiles, the descriptors, the
// warpgroup-uniform skips.
TEST(WgmmaAttentionEmulated, AroundTheTiles) {
  for (int64_t t : {1, 15, 64, 65, 130, 200, 260}) {
    SCOPED_TRACE("T " + std::to_string(t));
    expect_close<f16>(run_case<f16, 64, Kernels::kWgmma>(1, 2, t, false, 1, 52 + t, 2.f));
    expect_close<bf16>(run_case<bf16, 64, Kernels::kWgmma>(1, 2, t, true, 2, 53 + t, 2.f));
  }
  for (int64_t t : {17, 129}) {
    SCOPED_TRACE("T " + std::to_string(t));
    expect_close<bf16>(run_case<bf16, 128, Kernels::kWgmma>(1, 2, t, true, 2, 55 + t, 1.f));
    expect_close<f16>(run_case<f16, 128, Kernels::kWgmma>(1, 1, t, false, 0, 56 + t, 3.f));
  }
  expect_close<f16>(run_case<f16, 128, Kernels::kWgmma>(1, 1, 64, false, 0, 57, 1.f, 4.f, 4000.f));
}

// f16's range: gradients near its largest value stay finite because dS is scaled before it is
// rounded (unscaled, dS overflowed here while dQ and dK fit).
TEST(TensorCoreAttentionEmulated, F16GradientsNearTheRangeStayFinite) {
  expect_close<f16>(run_case<f16, 128>(1, 1, 64, false, 0, 21, 1.f, 4.f, 4000.f));
}

// The portable kernels (f32, and any head dim up to 256 in bf16 / f16): f32 to fp32 rounding. Fewer
// cases than above: their warp shuffles make the emulation slow (a barrier per shuffle).
TEST(PortableAttentionEmulated, F32AndOtherHeadDims) {
  for (int64_t t : {1, 33, 70}) {
    SCOPED_TRACE("T " + std::to_string(t));
    expect_close<float>(run_case<float, 16, Kernels::kPortable>(1, 2, t, true, 2, 31 + t, 1.f));
  }
  expect_close<float>(run_case<float, 64, Kernels::kPortable>(1, 1, 70, false, 1, 32, 2.f));
  expect_close<bf16>(run_case<bf16, 40, Kernels::kPortable>(1, 1, 33, true, 0, 33, 1.f));
  expect_close<float>(run_case<float, 128, Kernels::kPortable>(1, 1, 45, true, 2, 34, 1.f));
  expect_close<f16>(run_case<f16, 256, Kernels::kPortable>(1, 1, 40, false, 1, 35, 1.f));
}

}  // namespace
