// Causal attention, flash-style (Dao et al. 2022, FlashAttention-2 Alg. 1 and 2): keys are visited
// in blocks of kBk with an online softmax, so memory is O(T * Hd) per head, never O(T^2).
// score(i, j) = q_i . k_j / sqrt(Hd) + slope * (j - i) for j <= i (ALiBi; HF adds slope * j,
// which differs by a per-row constant that softmax removes). lse_i = log sum_j exp(score(i, j)).
// q, k, v, o, dout, dq, dk, dv: (B, H, T, Hd); lse: (B, H, T); slopes: (H) or empty.
// Backward recomputes p_ij = exp(score - lse_i) per key block; D_i = dout_i . o_i.
#include <cmath>
#include <vector>

#include "backend/cpu/ops.h"
#include "backend/op_check.h"

namespace cs::cpu {

namespace {
constexpr int64_t kBq = 32, kBk = 64;

struct Dims {
  int64_t b, h, t, hd;
};

Dims check_dims(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& slopes) {
  CS_CHECK(q.ndim() == 4 && q.shape == k.shape && q.shape == v.shape)
      << q.shape.str() << k.shape.str() << v.shape.str();
  Dims d{q.size(0), q.size(1), q.size(2), q.size(3)};
  CS_CHECK(slopes.numel() == 0 || slopes.numel() == d.h) << slopes.shape.str();
  return d;
}

// The dtype and device checks the forward and the backward share.
void check_attention_args(const char* op, const Tensor& q, const Tensor& k, const Tensor& v,
                          const Tensor& slopes) {
  check_f32(op, "q", q, Device::CPU);
  check_f32(op, "k", k, Device::CPU);
  check_f32(op, "v", v, Device::CPU);
  if (slopes.numel()) check_f32(op, "slopes", slopes, Device::CPU);
}

// Transposes rows [j0, j1) of a (T, Hd) head into kt (Hd, kBk).
void transpose_block(const float* x, int64_t j0, int64_t j1, int64_t hd, float* xt) {
  for (int64_t c = 0; c < j1 - j0; ++c)
    for (int64_t d = 0; d < hd; ++d) xt[d * kBk + c] = x[(j0 + c) * hd + d];
}

// s[c] = scale * q . k_{j0+c} + slope * (j0 + c - i) for c < n.
inline void block_scores(const float* qi, const float* kt, int64_t hd, int64_t n, float scale,
                         float slope, int64_t i, int64_t j0, float* s) {
  for (int64_t c = 0; c < kBk; ++c) s[c] = 0.f;
  for (int64_t d = 0; d < hd; ++d) {
    const float qd = qi[d];
    const float* kr = kt + d * kBk;
#pragma omp simd
    for (int64_t c = 0; c < kBk; ++c) s[c] += qd * kr[c];
  }
  for (int64_t c = 0; c < n; ++c) s[c] = s[c] * scale + slope * float(j0 + c - i);
}
}  // namespace

void attention_forward(Ctx&, const Tensor& q, const Tensor& k, const Tensor& v,
                       const Tensor& slopes, const Tensor& o, const Tensor& lse) {
  check_attention_args("attention_forward", q, k, v, slopes);
  check_f32_args("attention_forward", Device::CPU, {{"o", &o}, {"lse", &lse}});
  const Dims dm = check_dims(q, k, v, slopes);
  CS_CHECK(o.shape == q.shape && lse.numel() == dm.b * dm.h * dm.t);
  const int64_t hd = dm.hd, t_len = dm.t, nqb = (t_len + kBq - 1) / kBq;
  const float scale = 1.f / std::sqrt(float(hd));
#pragma omp parallel
  {
    thread_local std::vector<float> kt, acc;
    kt.assign(size_t(hd * kBk), 0.f);
    acc.resize(size_t(kBq * hd));
    float s[kBk], m[kBq], l[kBq];
#pragma omp for collapse(2) schedule(dynamic)
    for (int64_t bh = 0; bh < dm.b * dm.h; ++bh)
      for (int64_t qb = nqb - 1; qb >= 0; --qb) {  // long rows first: better balance
        const float slope = slopes.numel() ? slopes.f32()[bh % dm.h] : 0.f;
        const float* qh = q.f32() + bh * t_len * hd;
        const float* kh = k.f32() + bh * t_len * hd;
        const float* vh = v.f32() + bh * t_len * hd;
        const int64_t i0 = qb * kBq, i1 = std::min(i0 + kBq, t_len);
        for (int64_t r = 0; r < i1 - i0; ++r) { m[r] = -INFINITY; l[r] = 0.f; }
        std::fill(acc.begin(), acc.end(), 0.f);
        for (int64_t j0 = 0; j0 < i1; j0 += kBk) {
          const int64_t j1 = std::min(j0 + kBk, i1);
          transpose_block(kh, j0, j1, hd, kt.data());
          for (int64_t r = 0; r < i1 - i0; ++r) {
            const int64_t i = i0 + r, n = std::min(j1, i + 1) - j0;
            if (n <= 0) continue;
            block_scores(qh + i * hd, kt.data(), hd, n, scale, slope, i, j0, s);
            float mx = m[r];
            for (int64_t c = 0; c < n; ++c) mx = std::max(mx, s[c]);
            const float corr = std::exp(m[r] - mx);
            float psum = 0.f;
            for (int64_t c = 0; c < n; ++c) { s[c] = std::exp(s[c] - mx); psum += s[c]; }
            l[r] = l[r] * corr + psum;
            m[r] = mx;
            float* a = acc.data() + r * hd;
#pragma omp simd
            for (int64_t d = 0; d < hd; ++d) a[d] *= corr;
            for (int64_t c = 0; c < n; ++c) {
              const float p = s[c];
              const float* vr = vh + (j0 + c) * hd;
#pragma omp simd
              for (int64_t d = 0; d < hd; ++d) a[d] += p * vr[d];
            }
          }
        }
        for (int64_t r = 0; r < i1 - i0; ++r) {
          float* orow = o.f32() + (bh * t_len + i0 + r) * hd;
          const float inv = 1.f / l[r];
          for (int64_t d = 0; d < hd; ++d) orow[d] = acc[size_t(r * hd + d)] * inv;
          lse.f32()[bh * t_len + i0 + r] = m[r] + std::log(l[r]);
        }
      }
  }
}

void attention_backward(Ctx&, const Tensor& q, const Tensor& k, const Tensor& v,
                        const Tensor& slopes, const Tensor& o, const Tensor& lse,
                        const Tensor& dout, const Tensor& dq, const Tensor& dk, const Tensor& dv) {
  check_attention_args("attention_backward", q, k, v, slopes);
  check_f32_args("attention_backward", Device::CPU,
                 {{"o", &o}, {"lse", &lse}, {"dout", &dout}, {"dq", &dq}, {"dk", &dk}, {"dv", &dv}});
  const Dims dm = check_dims(q, k, v, slopes);
  CS_CHECK(dout.shape == q.shape && dq.shape == q.shape && dk.shape == q.shape && dv.shape == q.shape);
  const int64_t hd = dm.hd, t_len = dm.t;
  const float scale = 1.f / std::sqrt(float(hd));
#pragma omp parallel
  {
    thread_local std::vector<float> kt, vt, dvec;
    kt.assign(size_t(hd * kBk), 0.f);
    vt.assign(size_t(hd * kBk), 0.f);
    dvec.resize(size_t(t_len));
    float s[kBk], dp[kBk];
#pragma omp for schedule(dynamic)
    for (int64_t bh = 0; bh < dm.b * dm.h; ++bh) {
      const float slope = slopes.numel() ? slopes.f32()[bh % dm.h] : 0.f;
      const int64_t off = bh * t_len * hd;
      const float *qh = q.f32() + off, *kh = k.f32() + off, *vh = v.f32() + off;
      const float *oh = o.f32() + off, *doh = dout.f32() + off, *lh = lse.f32() + bh * t_len;
      float *dqh = dq.f32() + off, *dkh = dk.f32() + off, *dvh = dv.f32() + off;
      std::fill(dqh, dqh + t_len * hd, 0.f);
      std::fill(dkh, dkh + t_len * hd, 0.f);
      std::fill(dvh, dvh + t_len * hd, 0.f);
      for (int64_t i = 0; i < t_len; ++i) {
        float acc = 0.f;
        for (int64_t d = 0; d < hd; ++d) acc += doh[i * hd + d] * oh[i * hd + d];
        dvec[size_t(i)] = acc;
      }
      for (int64_t j0 = 0; j0 < t_len; j0 += kBk) {
        const int64_t j1 = std::min(j0 + kBk, t_len);
        transpose_block(kh, j0, j1, hd, kt.data());
        transpose_block(vh, j0, j1, hd, vt.data());
        for (int64_t i = j0; i < t_len; ++i) {
          const int64_t n = std::min(j1, i + 1) - j0;
          const float* qi = qh + i * hd;
          const float* doi = doh + i * hd;
          block_scores(qi, kt.data(), hd, n, scale, slope, i, j0, s);
          // dp[c] = dout_i . v_c
          for (int64_t c = 0; c < kBk; ++c) dp[c] = 0.f;
          for (int64_t d = 0; d < hd; ++d) {
            const float g = doi[d];
            const float* vr = vt.data() + d * kBk;
#pragma omp simd
            for (int64_t c = 0; c < kBk; ++c) dp[c] += g * vr[c];
          }
          float* dqi = dqh + i * hd;
          for (int64_t c = 0; c < n; ++c) {
            const float p = std::exp(s[c] - lh[i]);
            const float ds = p * (dp[c] - dvec[size_t(i)]) * scale;
            float* dvr = dvh + (j0 + c) * hd;
            float* dkr = dkh + (j0 + c) * hd;
            const float* kr = kh + (j0 + c) * hd;
#pragma omp simd
            for (int64_t d = 0; d < hd; ++d) {
              dvr[d] += p * doi[d];
              dkr[d] += ds * qi[d];
              dqi[d] += ds * kr[d];
            }
          }
        }
      }
    }
  }
}

}  // namespace cs::cpu
