// SwiGLU (Shazeer 2020) as Baichuan's MLP uses it: out = silu(gate) * up, silu(g) = g * sigmoid(g).
// gu: (N, 2F), gate columns [0, F), up columns [F, 2F) (gate_proj and up_proj are adjacent in the
// parameter buffer, so one GEMM makes both); out, dout: (N, F); dgu: (N, 2F).
// gu, out and dgu may be bf16 (under --bf16: a GEMM's output and GEMM inputs).
// d silu(g)/dg = s * (1 + g * (1 - s)), s = sigmoid(g) = 1 / (1 + exp(-g)), exp from fast_exp.h
// (vector code; libm's expf, a call per element, kept these loops scalar and 4x slower).
#include <cmath>

#include "backend/cpu/bf16.h"
#include "backend/cpu/fast_exp.h"
#include "backend/cpu/ops.h"
#include "backend/op_check.h"

namespace cs::cpu {

namespace {
template <typename G, typename O>
void swiglu_rows(const G* gu, O* out, int64_t n, int64_t f) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const G* g = gu + i * 2 * f;
    const G* u = g + f;
    O* o = out + i * f;
#pragma omp simd
    for (int64_t j = 0; j < f; ++j) {
      const float gj = load(g + j);
      store(o + j, gj / (1.f + fast_exp(-gj)) * load(u + j));
    }
  }
}

template <typename G, typename D>
void swiglu_grad_rows(const G* gu, const Tensor& dout, D* dgu, int64_t n, int64_t f) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const G* g = gu + i * 2 * f;
    const G* u = g + f;
    const float* d = dout.f32() + i * f;
    D* dg = dgu + i * 2 * f;
    D* du = dg + f;
#pragma omp simd
    for (int64_t j = 0; j < f; ++j) {
      const float gj = load(g + j), uj = load(u + j), dj = d[j];  // dgu may alias gu (same dtype)
      const float s = 1.f / (1.f + fast_exp(-gj));
      store(dg + j, dj * uj * s * (1.f + gj * (1.f - s)));
      store(du + j, dj * gj * s);
    }
  }
}
}  // namespace

void swiglu_forward(Ctx&, const Tensor& gu, const Tensor& out) {
  check_f32_or_bf16("swiglu_forward", "gu", gu, Device::CPU);
  check_f32_or_bf16("swiglu_forward", "out", out, Device::CPU);
  const int64_t f = out.size(-1), n = out.numel() / f;
  CS_CHECK(gu.numel() == 2 * n * f) << gu.shape.str() << out.shape.str();
  with_f32_or_bf16(gu, [&](auto g) {
    with_f32_or_bf16(out, [&](auto o) { swiglu_rows(data_as<const decltype(g)>(gu), data_as<decltype(o)>(out), n, f); });
  });
}

void swiglu_backward(Ctx&, const Tensor& gu, const Tensor& dout, const Tensor& dgu) {
  check_f32_or_bf16("swiglu_backward", "gu", gu, Device::CPU);
  check_f32("swiglu_backward", "dout", dout, Device::CPU);
  check_f32_or_bf16("swiglu_backward", "dgu", dgu, Device::CPU);
  const int64_t f = dout.size(-1), n = dout.numel() / f;
  CS_CHECK(gu.numel() == 2 * n * f && dgu.numel() == 2 * n * f);
  CS_CHECK(gu.data != dgu.data || gu.dtype == dgu.dtype) << "swiglu_backward: dgu aliases gu in another dtype";
  with_f32_or_bf16(gu, [&](auto g) {
    with_f32_or_bf16(dgu, [&](auto o) {
      swiglu_grad_rows(data_as<const decltype(g)>(gu), dout, data_as<decltype(o)>(dgu), n, f);
    });
  });
}

}  // namespace cs::cpu
