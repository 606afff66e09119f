// Attention for generation: a few new query positions against the KV cache. Queries are the last
// Tq of tk positions; score(i, j) = q_i . k_j / sqrt(Hd) + slope * (j - i) for j <= i, as in
// training. One row of scores at a time (tk floats): no (T, T) matrix.
// q, o: (B, H, Tq, Hd); k_cache, v_cache, cache: (B, H, Tcap, Hd).
#include <cmath>
#include <cstring>
#include <vector>

#include "backend/cpu/ops.h"
#include "backend/op_check.h"

namespace cs::cpu {

void attention_decode(Ctx&, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                      int64_t tk, const Tensor& slopes, const Tensor& o) {
  check_f32_args("attention_decode", Device::CPU, {{"q", &q}, {"k_cache", &k_cache}, {"v_cache", &v_cache}});
  if (slopes.numel()) check_f32("attention_decode", "slopes", slopes, Device::CPU);
  check_f32("attention_decode", "o", o, Device::CPU);
  const int64_t b = q.size(0), h = q.size(1), tq = q.size(2), hd = q.size(3), cap = k_cache.size(2);
  CS_CHECK(k_cache.shape == v_cache.shape && k_cache.size(0) == b && k_cache.size(1) == h &&
           k_cache.size(3) == hd && tq <= tk && tk <= cap && o.shape == q.shape)
      << q.shape.str() << k_cache.shape.str() << " tk " << tk;
  const float scale = 1.f / std::sqrt(float(hd));
#pragma omp parallel
  {
    std::vector<float> s(static_cast<size_t>(tk));
#pragma omp for collapse(3) schedule(static)
    for (int64_t bi = 0; bi < b; ++bi)
      for (int64_t hi = 0; hi < h; ++hi)
        for (int64_t r = 0; r < tq; ++r) {
          const int64_t i = tk - tq + r, bh = bi * h + hi;
          const float slope = slopes.numel() ? slopes.f32()[hi] : 0.f;
          const float* qi = q.f32() + (bh * tq + r) * hd;
          const float* kh = k_cache.f32() + bh * cap * hd;
          const float* vh = v_cache.f32() + bh * cap * hd;
          float mx = -INFINITY;
          for (int64_t j = 0; j <= i; ++j) {
            float acc = 0.f;
#pragma omp simd reduction(+ : acc)
            for (int64_t d = 0; d < hd; ++d) acc += qi[d] * kh[j * hd + d];
            s[size_t(j)] = acc * scale + slope * float(j - i);
            mx = std::max(mx, s[size_t(j)]);
          }
          float sum = 0.f;
          for (int64_t j = 0; j <= i; ++j) sum += (s[size_t(j)] = std::exp(s[size_t(j)] - mx));
          float* oi = o.f32() + (bh * tq + r) * hd;
          for (int64_t d = 0; d < hd; ++d) oi[d] = 0.f;
          for (int64_t j = 0; j <= i; ++j) {
            const float p = s[size_t(j)] / sum;
#pragma omp simd
            for (int64_t d = 0; d < hd; ++d) oi[d] += p * vh[j * hd + d];
          }
        }
  }
}

void kv_append(Ctx&, const Tensor& x, const Tensor& cache, int64_t pos) {
  check_f32_args("kv_append", Device::CPU, {{"x", &x}, {"cache", &cache}});
  const int64_t b = x.size(0), h = x.size(1), t = x.size(2), hd = x.size(3), cap = cache.size(2);
  CS_CHECK(cache.size(0) == b && cache.size(1) == h && cache.size(3) == hd && pos + t <= cap)
      << x.shape.str() << cache.shape.str() << " pos " << pos;
  for (int64_t bh = 0; bh < b * h; ++bh)
    std::memcpy(cache.f32() + (bh * cap + pos) * hd, x.f32() + bh * t * hd, size_t(t * hd) * sizeof(float));
}

}  // namespace cs::cpu
