// RMSNorm as in Hugging Face Baichuan: y = w * x / sqrt(mean(x^2) + eps), statistics in fp32.
// x, y, dy, dx: (N, D); w, dw: (D); rstd: (N) saved by forward.
// w may be bf16 (the compute copy under --bf16) and so may y (it only feeds a GEMM); the rest is
// f32. Backward: with g = w * dy, dx = rstd * g - x * rstd^3 * mean(g * x); dw += sum_n dy * x * rstd.
#include <cmath>
#include <vector>

#include "backend/cpu/bf16.h"
#include "backend/cpu/ops.h"
#include "backend/cpu/threads.h"
#include "backend/op_check.h"

namespace cs::cpu {

namespace {
template <typename W, typename Y>
void rmsnorm_rows(const Tensor& x, const W* w, float eps, Y* y, const Tensor& rstd, int64_t n, int64_t d) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x.f32() + i * d;
    Y* yi = y + i * d;
    float ss = 0.f;
#pragma omp simd reduction(+ : ss)
    for (int64_t j = 0; j < d; ++j) ss += xi[j] * xi[j];
    const float r = 1.f / std::sqrt(ss / float(d) + eps);
    rstd.f32()[i] = r;
#pragma omp simd
    for (int64_t j = 0; j < d; ++j) store(yi + j, load(w + j) * (xi[j] * r));
  }
}

// w as f32 values: w itself, or the bf16 weights widened into scratch (D elements).
const float* weights_f32(const Tensor& w, std::vector<float>& scratch) {
  if (w.dtype == DType::F32) return w.f32();
  scratch.resize(size_t(w.numel()));
  for (int64_t j = 0; j < w.numel(); ++j) scratch[size_t(j)] = load(data_as<const Bf16>(w) + j);
  return scratch.data();
}
}  // namespace

void rmsnorm_forward(Ctx&, const Tensor& x, const Tensor& w, float eps, const Tensor& y,
                     const Tensor& rstd) {
  check_f32_args("rmsnorm_forward", Device::CPU, {{"x", &x}, {"rstd", &rstd}});
  check_f32_or_bf16("rmsnorm_forward", "w", w, Device::CPU);
  check_f32_or_bf16("rmsnorm_forward", "y", y, Device::CPU);
  const int64_t d = w.numel(), n = x.numel() / d;
  CS_CHECK(x.numel() == n * d && y.numel() == n * d && rstd.numel() == n);
  thread_local std::vector<float> wf;
  const float* wp = weights_f32(w, wf);
  with_f32_or_bf16(y, [&](auto t) { rmsnorm_rows(x, wp, eps, data_as<decltype(t)>(y), rstd, n, d); });
}

void rmsnorm_backward(Ctx&, const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dy,
                      const Tensor& dx, const Tensor& dw, bool accumulate_dx) {
  check_f32_args("rmsnorm_backward", Device::CPU, {{"x", &x}, {"rstd", &rstd}, {"dy", &dy}, {"dx", &dx}, {"dw", &dw}});
  check_f32_or_bf16("rmsnorm_backward", "w", w, Device::CPU);
  const int64_t d = w.numel(), n = x.numel() / d;
  thread_local std::vector<float> wf;
  const float* wp = weights_f32(w, wf);
  CS_CHECK(dy.numel() == n * d && dx.numel() == n * d && dw.numel() == d);
  // dw: each thread sums a block of rows into its own partial, then partials are added in thread
  // order (deterministic for a fixed thread count).
  std::vector<float> partial;
#pragma omp parallel
  {
#pragma omp single
    partial.assign(size_t(omp_threads()) * d, 0.f);
    float* mine = partial.data() + size_t(omp_thread()) * d;
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const float* xi = x.f32() + i * d;
      const float* dyi = dy.f32() + i * d;
      float* dxi = dx.f32() + i * d;
      const float r = rstd.f32()[i];
      float dot = 0.f;
#pragma omp simd reduction(+ : dot)
      for (int64_t j = 0; j < d; ++j) dot += wp[j] * dyi[j] * xi[j];
      const float c = dot * r * r * r / float(d);
      if (accumulate_dx) {
#pragma omp simd
        for (int64_t j = 0; j < d; ++j) dxi[j] += r * wp[j] * dyi[j] - c * xi[j];
      } else {
#pragma omp simd
        for (int64_t j = 0; j < d; ++j) dxi[j] = r * wp[j] * dyi[j] - c * xi[j];
      }
#pragma omp simd
      for (int64_t j = 0; j < d; ++j) mine[j] += dyi[j] * xi[j] * r;
    }
  }
  const int64_t nt = int64_t(partial.size()) / d;
  for (int64_t t = 0; t < nt; ++t)
    for (int64_t j = 0; j < d; ++j) dw.f32()[j] += partial[size_t(t * d + j)];
}

}  // namespace cs::cpu
