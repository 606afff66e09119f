// matmul with bf16 operands through oneDNN's matmul primitive (Debian's libdnnl: AVX-512 BF16
// brgemm kernels on CPUs that have them, about twice sgemm's rate): bf16 x bf16 products
// accumulated in f32 into an f32 or bf16 output, c = alpha * op(a) @ op(b) + beta * c. An f32 operand is
// rounded to bf16 first (into per-thread scratch that only grows), which is what a bf16 compute
// copy of it would hold; a transposed operand is described by its strides, never copied.
// Primitives are made once per shape and kept, per thread, each with its own scratchpad (oneDNN's
// user scratchpad mode: no allocation per call): a training run has a handful of GEMM shapes.
#include <oneapi/dnnl/dnnl.hpp>

#include <fmt/core.h>

#include <algorithm>
#include <map>
#include <tuple>
#include <vector>

#include "backend/cpu/bf16.h"
#include "backend/cpu/matmul_bf16.h"
#include "core/error.h"

namespace cs::cpu {

namespace {
using dnnl::memory;

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

// (m, n, k, trans_a, trans_b, alpha, beta, bf16 output): everything a primitive is specialised
// for (leading dimensions follow from the shapes: operands are contiguous 2-D tensors).
using Key = std::tuple<int64_t, int64_t, int64_t, bool, bool, float, float, bool>;

// A primitive with its memory objects (their data handles set per call) and its scratchpad.
struct Prim {
  dnnl::matmul mm;
  memory a, b, c, scratchpad;
};

Prim& primitive(const Key& key) {
  thread_local std::map<Key, Prim> cache;
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  const auto [m, n, k, ta, tb, alpha, beta, out_bf16] = key;
  // Logical op(a) (m, k) and op(b) (k, n), row-major storage of a or a^T (b or b^T).
  const memory::desc a({m, k}, memory::data_type::bf16, ta ? memory::dims{1, m} : memory::dims{k, 1});
  const memory::desc b({k, n}, memory::data_type::bf16, tb ? memory::dims{1, k} : memory::dims{n, 1});
  const memory::desc c({m, n}, out_bf16 ? memory::data_type::bf16 : memory::data_type::f32, memory::dims{n, 1});
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (alpha != 1.f) attr.set_output_scales(0, {alpha});
  if (beta != 0.f) {
    dnnl::post_ops po;
    po.append_sum(beta);
    attr.set_post_ops(po);
  }
  dnnl::matmul::primitive_desc pd;
  try {
    pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, b, c), attr, engine());
  } catch (const dnnl::error& e) {  // oneDNN has no bf16 GEMM for this CPU (it needs AVX-512)
    throw Error(fmt::format("[matmul] no bf16 GEMM on this CPU (oneDNN: {}). Hint: train without --bf16 "
                            "(fp32), or on a CPU with AVX-512", e.what()));
  }
  Prim p{dnnl::matmul(pd), memory(a, engine(), DNNL_MEMORY_NONE), memory(b, engine(), DNNL_MEMORY_NONE),
         memory(c, engine(), DNNL_MEMORY_NONE), memory(pd.scratchpad_desc(), engine())};
  return cache.emplace(key, std::move(p)).first->second;
}

// x's elements as bf16: x itself, or x rounded into scratch (resized, never shrunk).
const Bf16* as_bf16(const Tensor& x, std::vector<Bf16>& scratch) {
  if (x.dtype == DType::BF16) return data_as<const Bf16>(x);
  const int64_t n = x.numel();
  if (scratch.size() < size_t(n)) scratch.resize(size_t(n));
  const float* src = x.f32();
  Bf16* dst = scratch.data();
  constexpr int64_t kChunk = 1 << 14;
#pragma omp parallel for schedule(static) if (n > 4 * kChunk)
  for (int64_t c = 0; c < n; c += kChunk) to_bf16(src + c, dst + c, std::min(kChunk, n - c));
  return dst;
}
}  // namespace

void matmul_bf16(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, const Tensor& out,
                 int64_t m, int64_t n, int64_t k, float alpha, float beta) {
  const bool out_bf16 = out.dtype == DType::BF16;
  if (k == 0) {  // no products: c = beta * c (oneDNN refuses empty reductions)
    for (int64_t i = 0; i < m * n; ++i) {
      if (out_bf16) {
        Bf16* c = data_as<Bf16>(out) + i;
        store(c, beta == 0.f ? 0.f : beta * load(c));
      } else {
        float* c = out.f32() + i;
        *c = beta == 0.f ? 0.f : beta * *c;
      }
    }
    return;
  }
  thread_local std::vector<Bf16> scratch_a, scratch_b;
  thread_local dnnl::stream stream(engine());
  Prim& p = primitive(Key{m, n, k, trans_a, trans_b, alpha, beta, out_bf16});
  p.a.set_data_handle(const_cast<Bf16*>(as_bf16(a, scratch_a)));
  p.b.set_data_handle(const_cast<Bf16*>(as_bf16(b, scratch_b)));
  p.c.set_data_handle(out.data);
  p.mm.execute(stream, {{DNNL_ARG_SRC, p.a}, {DNNL_ARG_WEIGHTS, p.b}, {DNNL_ARG_DST, p.c},
                        {DNNL_ARG_SCRATCHPAD, p.scratchpad}});
  stream.wait();
}

}  // namespace cs::cpu
