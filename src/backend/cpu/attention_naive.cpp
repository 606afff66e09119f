// The reference attention: one head at a time, the full (T, T) score matrix materialised, softmax,
// then products. Kept for tests and as the benchmark baseline of the flash kernel; not in the op
// table. Same contract as attention_forward / attention_backward.
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/ops.h"
#include "backend/op_check.h"

namespace cs::cpu {

namespace {
// p = softmax of the causal, biased scores of head bh; returns nothing, fills p (T, T) and lse.
void probs(const float* qh, const float* kh, int64_t t_len, int64_t hd, float slope, float* p,
           float* lse) {
  const float scale = 1.f / std::sqrt(float(hd));
  for (int64_t i = 0; i < t_len; ++i) {
    float mx = -INFINITY;
    for (int64_t j = 0; j <= i; ++j) {
      float acc = 0.f;
      for (int64_t d = 0; d < hd; ++d) acc += qh[i * hd + d] * kh[j * hd + d];
      p[i * t_len + j] = acc * scale + slope * float(j - i);
      mx = std::max(mx, p[i * t_len + j]);
    }
    float sum = 0.f;
    for (int64_t j = 0; j <= i; ++j) sum += (p[i * t_len + j] = std::exp(p[i * t_len + j] - mx));
    for (int64_t j = 0; j <= i; ++j) p[i * t_len + j] /= sum;
    for (int64_t j = i + 1; j < t_len; ++j) p[i * t_len + j] = 0.f;
    lse[i] = mx + std::log(sum);
  }
}

// The checks the forward and the backward share: dtypes, devices and the (B, H, T, Hd) shapes.
void check_args(const char* op, const Tensor& q, const Tensor& k, const Tensor& v,
                const Tensor& slopes, const Tensor& lse) {
  check_f32(op, "q", q, Device::CPU);
  check_f32(op, "k", k, Device::CPU);
  check_f32(op, "v", v, Device::CPU);
  if (slopes.numel()) check_f32(op, "slopes", slopes, Device::CPU);
  check_f32(op, "lse", lse, Device::CPU);
  CS_CHECK(q.ndim() == 4 && q.shape == k.shape && q.shape == v.shape)
      << q.shape.str() << k.shape.str() << v.shape.str();
  CS_CHECK(slopes.numel() == 0 || slopes.numel() == q.size(1)) << slopes.shape.str();
  CS_CHECK(lse.numel() == q.size(0) * q.size(1) * q.size(2)) << lse.shape.str();
}
}  // namespace

void attention_naive_forward(Ctx&, const Tensor& q, const Tensor& k, const Tensor& v,
                             const Tensor& slopes, const Tensor& o, const Tensor& lse) {
  check_args("attention_naive_forward", q, k, v, slopes, lse);
  check_f32("attention_naive_forward", "o", o, Device::CPU);
  CS_CHECK(o.shape == q.shape) << o.shape.str() << q.shape.str();
  const int64_t bhn = q.size(0) * q.size(1), t_len = q.size(2), hd = q.size(3);
#pragma omp parallel for schedule(dynamic)
  for (int64_t bh = 0; bh < bhn; ++bh) {
    std::vector<float> p(size_t(t_len * t_len));
    const int64_t off = bh * t_len * hd;
    const float slope = slopes.numel() ? slopes.f32()[bh % q.size(1)] : 0.f;
    probs(q.f32() + off, k.f32() + off, t_len, hd, slope, p.data(), lse.f32() + bh * t_len);
    float* oh = o.f32() + off;
    const float* vh = v.f32() + off;
    std::fill(oh, oh + t_len * hd, 0.f);
    for (int64_t i = 0; i < t_len; ++i)
      for (int64_t j = 0; j <= i; ++j) {
        const float pij = p[size_t(i * t_len + j)];
        for (int64_t d = 0; d < hd; ++d) oh[i * hd + d] += pij * vh[j * hd + d];
      }
  }
}

void attention_naive_backward(Ctx&, const Tensor& q, const Tensor& k, const Tensor& v,
                              const Tensor& slopes, const Tensor& o, const Tensor& lse,
                              const Tensor& dout, const Tensor& dq, const Tensor& dk,
                              const Tensor& dv) {
  constexpr const char* op = "attention_naive_backward";
  check_args(op, q, k, v, slopes, lse);
  check_f32(op, "o", o, Device::CPU);
  check_f32(op, "dout", dout, Device::CPU);
  check_f32(op, "dq", dq, Device::CPU);
  check_f32(op, "dk", dk, Device::CPU);
  check_f32(op, "dv", dv, Device::CPU);
  CS_CHECK(dout.shape == q.shape && dq.shape == q.shape && dk.shape == q.shape &&
           dv.shape == q.shape);
  const int64_t bhn = q.size(0) * q.size(1), t_len = q.size(2), hd = q.size(3);
  const float scale = 1.f / std::sqrt(float(hd));
#pragma omp parallel for schedule(dynamic)
  for (int64_t bh = 0; bh < bhn; ++bh) {
    std::vector<float> p(size_t(t_len * t_len)), ds(size_t(t_len * t_len)), lse_tmp(t_len);
    const int64_t off = bh * t_len * hd;
    const float slope = slopes.numel() ? slopes.f32()[bh % q.size(1)] : 0.f;
    const float *qh = q.f32() + off, *kh = k.f32() + off, *vh = v.f32() + off;
    const float* doh = dout.f32() + off;
    probs(qh, kh, t_len, hd, slope, p.data(), lse_tmp.data());
    for (int64_t i = 0; i < t_len; ++i) {
      // dp_ij = dout_i . v_j ; ds_ij = p_ij (dp_ij - sum_j' p_ij' dp_ij')
      float row = 0.f;
      for (int64_t j = 0; j <= i; ++j) {
        float acc = 0.f;
        for (int64_t d = 0; d < hd; ++d) acc += doh[i * hd + d] * vh[j * hd + d];
        ds[size_t(i * t_len + j)] = acc;
        row += p[size_t(i * t_len + j)] * acc;
      }
      for (int64_t j = 0; j <= i; ++j)
        ds[size_t(i * t_len + j)] = p[size_t(i * t_len + j)] * (ds[size_t(i * t_len + j)] - row);
    }
    float *dqh = dq.f32() + off, *dkh = dk.f32() + off, *dvh = dv.f32() + off;
    std::fill(dqh, dqh + t_len * hd, 0.f);
    std::fill(dkh, dkh + t_len * hd, 0.f);
    std::fill(dvh, dvh + t_len * hd, 0.f);
    for (int64_t i = 0; i < t_len; ++i)
      for (int64_t j = 0; j <= i; ++j) {
        const float g = ds[size_t(i * t_len + j)] * scale, pij = p[size_t(i * t_len + j)];
        for (int64_t d = 0; d < hd; ++d) {
          dqh[i * hd + d] += g * kh[j * hd + d];
          dkh[j * hd + d] += g * qh[i * hd + d];
          dvh[j * hd + d] += pij * doh[i * hd + d];
        }
      }
  }
}

}  // namespace cs::cpu
