// Attention for generation on the GPU: the new queries (the last Tq of tk positions) against the
// KV cache, through the training forward kernel (attention.cuh) with the cache's head stride and
// the queries' first position tk - Tq; no lse. kv_append writes new keys / values into the cache
// with one strided copy. q, o, caches: f32|bf16|f16, all one dtype.
#include "backend/cuda/attention.cuh"
#include "backend/cuda/ops.h"

namespace cs::cuda {

void attention_decode(Ctx& c, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, int64_t tk,
                      const Tensor& slopes, const Tensor& o) {
  check_float("attention_decode", "q", q, Device::CUDA);
  check_arg("attention_decode", "k_cache", k_cache, q.dtype, Device::CUDA);
  check_arg("attention_decode", "v_cache", v_cache, q.dtype, Device::CUDA);
  check_arg("attention_decode", "o", o, q.dtype, Device::CUDA);
  if (slopes.numel()) check_f32("attention_decode", "slopes", slopes, Device::CUDA);
  const int64_t b = q.size(0), h = q.size(1), tq = q.size(2), hd = q.size(3), cap = k_cache.size(2);
  CS_CHECK(k_cache.shape == v_cache.shape && k_cache.size(0) == b && k_cache.size(1) == h && k_cache.size(3) == hd &&
           tq <= tk && tk <= cap && o.shape == q.shape && hd <= kMaxHeadDim)
      << q.shape.str() << k_cache.shape.str() << " tk " << tk;
  if (!q.numel()) return;
  with_float(q.dtype, [&](auto tt) {
    using T = decltype(tt);
    FlashArgs<T> a{ptr<T>(q), ptr<T>(k_cache), ptr<T>(v_cache), ptr<T>(o), nullptr, nullptr,
                   slopes.numel() ? ptr<float>(slopes) : nullptr, nullptr,
                   tq, tk, tk - tq, tq * hd, cap * hd, int(hd), int(h), 1.f / sqrtf(float(hd))};
    flash_forward(c, a, b * h);
  });
}

void kv_append(Ctx& c, const Tensor& x, const Tensor& cache, int64_t pos) {
  check_float("kv_append", "x", x, Device::CUDA);
  check_arg("kv_append", "cache", cache, x.dtype, Device::CUDA);
  const int64_t b = x.size(0), h = x.size(1), t = x.size(2), hd = x.size(3), cap = cache.size(2);
  CS_CHECK(cache.size(0) == b && cache.size(1) == h && cache.size(3) == hd && pos + t <= cap)
      << x.shape.str() << cache.shape.str() << " pos " << pos;
  if (!x.numel()) return;
  const size_t es = dtype_size(x.dtype);
  check(cudaMemcpy2DAsync(static_cast<uint8_t*>(cache.data) + size_t(pos * hd) * es, size_t(cap * hd) * es, x.data,
                          size_t(t * hd) * es, size_t(t * hd) * es, size_t(b * h), cudaMemcpyDeviceToDevice, stream(c)),
        "kv_append");
}

}  // namespace cs::cuda
