// SwiGLU (Shazeer 2020) as Baichuan's MLP uses it: out = silu(gate) * up, silu(g) = g * sigmoid(g).
// gu: (N, 2F), gate columns [0, F), up columns [F, 2F) (gate_proj and up_proj are adjacent in the
// parameter buffer, so one GEMM makes both); out, dout: (N, F); dgu: (N, 2F).
// out may be bf16 (under --bf16 it only feeds the down projection's GEMM).
// d silu(g)/dg = s * (1 + g * (1 - s)), s = sigmoid(g).
#include <cmath>

#include "backend/cpu/bf16.h"
#include "backend/cpu/ops.h"
#include "backend/op_check.h"

namespace cs::cpu {

namespace {
template <typename O>
void swiglu_rows(const Tensor& gu, O* out, int64_t n, int64_t f) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float* g = gu.f32() + i * 2 * f;
    const float* u = g + f;
    O* o = out + i * f;
#pragma omp simd
    for (int64_t j = 0; j < f; ++j) store(o + j, g[j] / (1.f + std::exp(-g[j])) * u[j]);
  }
}
}  // namespace

void swiglu_forward(Ctx&, const Tensor& gu, const Tensor& out) {
  check_f32("swiglu_forward", "gu", gu, Device::CPU);
  check_f32_or_bf16("swiglu_forward", "out", out, Device::CPU);
  const int64_t f = out.size(-1), n = out.numel() / f;
  CS_CHECK(gu.numel() == 2 * n * f) << gu.shape.str() << out.shape.str();
  with_f32_or_bf16(out, [&](auto t) { swiglu_rows(gu, data_as<decltype(t)>(out), n, f); });
}

void swiglu_backward(Ctx&, const Tensor& gu, const Tensor& dout, const Tensor& dgu) {
  check_f32_args("swiglu_backward", Device::CPU, {{"gu", &gu}, {"dout", &dout}, {"dgu", &dgu}});
  const int64_t f = dout.size(-1), n = dout.numel() / f;
  CS_CHECK(gu.numel() == 2 * n * f && dgu.numel() == 2 * n * f);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float* g = gu.f32() + i * 2 * f;
    const float* u = g + f;
    const float* d = dout.f32() + i * f;
    float* dg = dgu.f32() + i * 2 * f;
    float* du = dg + f;
#pragma omp simd
    for (int64_t j = 0; j < f; ++j) {
      const float s = 1.f / (1.f + std::exp(-g[j]));
      const float gj = g[j], uj = u[j], dj = d[j];  // dgu may alias gu
      dg[j] = dj * uj * s * (1.f + gj * (1.f - s));
      du[j] = dj * gj * s;
    }
  }
}

}  // namespace cs::cpu
