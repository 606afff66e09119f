// Vocab-parallel cross entropy on the GPU (cpu/cross_entropy.cpp's contract): one block per row
// (row_kernels.cuh), reading the row once for its log-sum-exp (a running maximum and sum, 16 bytes
// an access where the shard's width and the pointers allow; fixed-order block reductions: the
// same bits every run), the target's logit when this rank holds its column; the combine over the
// ranks' parts; the backward scale * (softmax - onehot) over this rank's columns. The logits are
// read in f32 and never copied. A bf16 / f16 gradient written exactly over the logits (the model's
// case) goes straight there in chunks of rows that never write over a row still to be read
// (row_kernels.cuh's half_in_place_chunks), its first two rows through f32 staging; one lying over
// them some other way goes through the staging a block of rows at a time (rows [r0, r1) in the
// half dtype lie within f32 rows < r1, all read by then), as on the CPU.
#include "backend/cuda/common.cuh"
#include "backend/cuda/elementwise_kernels.cuh"
#include "backend/cuda/row_kernels.cuh"
#include "backend/cuda/ops.h"

namespace cs::cuda {

namespace {
constexpr int kThreads = 512;

__global__ void ce_combine_kernel(const float* parts, int64_t p, int64_t n, const float* target_logit,
                                  const int32_t* targets, float* losses, float* lse) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  float l = parts[i];
  if (p > 1) {  // one part is kept as it is (bit-identical to one rank)
    float mx = -INFINITY;
    for (int64_t r = 0; r < p; ++r) mx = fmaxf(mx, parts[r * n + i]);
    double s = 0.0;
    for (int64_t r = 0; r < p; ++r) s += exp(double(parts[r * n + i] - mx));
    l = mx + float(log(s));
  }
  lse[i] = l;
  losses[i] = targets[i] < 0 ? 0.f : l - target_logit[i];
}
}  // namespace

void cross_entropy_forward(Ctx& c, const Tensor& logits, const Tensor& targets, int64_t vocab_offset,
                           const Tensor& lse, const Tensor& target_logit) {
  check_f32("cross_entropy_forward", "logits", logits, Device::CUDA);
  check_arg("cross_entropy_forward", "targets", targets, DType::I32, Device::CUDA);
  check_f32_args("cross_entropy_forward", Device::CUDA, {{"lse", &lse}, {"target_logit", &target_logit}});
  const int64_t n = targets.numel(), v = logits.size(-1);
  CS_CHECK(logits.numel() == n * v && lse.numel() == n && target_logit.numel() == n && vocab_offset >= 0);
  if (!n) return;
  vec::with_width<4>(v % 4 == 0 && vec::aligned16(logits.data), [&](auto w) {
    CS_LAUNCH(unsigned(n), kThreads, 0, stream(c), per_row::ce_forward<decltype(w)::value>)(
        ptr<float>(logits), ptr<int32_t>(targets), v, vocab_offset, ptr<float>(lse), ptr<float>(target_logit));
  });
  check_launch("cross_entropy_forward");
}

void cross_entropy_combine(Ctx& c, const Tensor& lse_parts, const Tensor& target_logit, const Tensor& targets,
                           const Tensor& losses, const Tensor& lse) {
  check_f32_args("cross_entropy_combine", Device::CUDA,
                 {{"lse_parts", &lse_parts}, {"target_logit", &target_logit}, {"losses", &losses}, {"lse", &lse}});
  check_arg("cross_entropy_combine", "targets", targets, DType::I32, Device::CUDA);
  const int64_t n = targets.numel(), p = n ? lse_parts.numel() / n : 0;
  if (!n) return;
  CS_CHECK(p >= 1 && lse_parts.numel() == p * n && target_logit.numel() == n && losses.numel() == n &&
           lse.numel() == n)
      << lse_parts.shape.str() << " parts of " << n;
  CS_LAUNCH(blocks_for(n, 256), 256, 0, stream(c), ce_combine_kernel)(ptr<float>(lse_parts), p, n, ptr<float>(target_logit),
                                                               ptr<int32_t>(targets), ptr<float>(losses),
                                                               ptr<float>(lse));
  check_launch("cross_entropy_combine");
}

void cross_entropy_backward(Ctx& c, const Tensor& logits, const Tensor& lse, const Tensor& targets,
                            int64_t vocab_offset, float scale, const Tensor& dlogits) {
  check_f32_args("cross_entropy_backward", Device::CUDA, {{"logits", &logits}, {"lse", &lse}});
  check_arg("cross_entropy_backward", "targets", targets, DType::I32, Device::CUDA);
  check_float("cross_entropy_backward", "dlogits", dlogits, Device::CUDA);
  const int64_t n = targets.numel(), v = logits.size(-1);
  CS_CHECK(dlogits.numel() == n * v && vocab_offset >= 0);
  if (!n || !v) return;
  const float* z = ptr<float>(logits);
  const int32_t* tg = ptr<int32_t>(targets);
  const float* l = ptr<float>(lse);
  const bool aliased = dlogits.data < static_cast<const void*>(z + n * v) &&
                       static_cast<const void*>(z) < static_cast<uint8_t*>(dlogits.data) + dlogits.nbytes();
  // 4 columns a thread when the rows start on 16 bytes (f32 logits, f32 staging) and on 8 (bf16 / f16).
  const bool wide = v % 4 == 0 && vec::aligned16(z, dlogits.data, c.workspace.data);
  if (dlogits.dtype == DType::F32 || !aliased) {  // one pass (f32 in place: each element read, then written)
    with_float(dlogits.dtype, [&](auto td) {
      using D = decltype(td);
      vec::with_width<4>(wide, [&](auto w) {
        CS_LAUNCH(unsigned(n), kThreads, 0, stream(c), per_row::ce_backward<decltype(w)::value, D>)(z, l, tg, v, vocab_offset,
                                                                                         scale, 0, ptr<D>(dlogits));
      });
    });
    check_launch("cross_entropy_backward");
    return;
  }
  // Rows [0, n1) through f32 staging in the workspace, a block of rows at a time: every row when
  // the gradient lies over the logits some other way, the first two when exactly over them.
  const bool exact = dlogits.data == logits.data;
  const int64_t n1 = exact ? std::min<int64_t>(n, 2) : n;
  const int64_t rows = int64_t(c.workspace.nbytes() / (size_t(v) * sizeof(float)));
  CS_CHECK(rows >= 1) << "a vocabulary slice of " << v << " columns is over the workspace's f32 staging";
  float* staging = ptr<float>(c.workspace);
  with_float(dlogits.dtype, [&](auto td) {
    using D = decltype(td);
    for (int64_t r0 = 0; r0 < n1; r0 += rows) {
      const int64_t r1 = std::min(n1, r0 + rows);
      vec::with_width<4>(wide, [&](auto w) {
        CS_LAUNCH(unsigned(r1 - r0), kThreads, 0, stream(c), per_row::ce_backward<decltype(w)::value, float>)(
            z, l, tg, v, vocab_offset, scale, r0, staging);
      });
      check_launch("cross_entropy_backward");
      D* dst = ptr<D>(dlogits) + r0 * v;
      const int64_t m = (r1 - r0) * v;
      vec::with_width<8>(vec::aligned16(staging, dst), [&](auto w) {
        constexpr int N = decltype(w)::value;
        CS_LAUNCH(blocks_for(m / N + 1, 256, 8192), 256, 0, stream(c), ew::cast<N, float, D>)(staging, dst, m);
      });
      check_launch("cross_entropy_backward");
    }
    // The rest straight over the logits, in chunks no row of which writes over another's unread row.
    if (exact)
      per_row::half_in_place_chunks(n, [&](int64_t r0, int64_t r1) {
        vec::with_width<4>(wide, [&](auto w) {
          CS_LAUNCH(unsigned(r1 - r0), kThreads, 0, stream(c), per_row::ce_backward<decltype(w)::value, D>)(
              z, l, tg, v, vocab_offset, scale, r0, ptr<D>(dlogits) + r0 * v);
        });
        check_launch("cross_entropy_backward");
      });
  });
}

}  // namespace cs::cuda
