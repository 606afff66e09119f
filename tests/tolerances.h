// Test tolerances, one table per comparison (STYLE §6.4). Loosening one needs a comment saying who
// measured what.
#pragma once

namespace cs::tol {
// An fp32 kernel against a float64 scalar reference (DESIGN §4).
constexpr double kF32Atol = 1e-6, kF32Rtol = 1e-5;
// An fp32 backward against exact (complex-step) derivatives of the float64 reference: the kernel
// sums O(T + D) fp32 products, so absolute error scales with the gradient's magnitude; 1e-5
// relative to the tensor's largest entry is ~100 fp32 ulps.
constexpr double kGradAtolScale = 1e-5, kGradRtol = 1e-4;
// The whole model against the PyTorch float64 fixtures (issue 2: logits and loss 2e-5 absolute,
// gradients 1e-4 relative).
constexpr double kModelAtol = 2e-5, kModelGradRtol = 1e-4;

// Per storage dtype: a value held in that dtype against its fp32 (or float64) original. The
// per-tensor cosine floor follows from rtol: 1 - cos <= sin^2 <= (|a - e| / |e|)^2 <= rtol^2 (a
// bf16 tensor's cosine is ~1 - 1.3e-6, below the fp32 floor of 1 - 1e-6: measured on 3000 normals).
struct DTypeTol {
  double atol, rtol, min_cosine;
};
// fp32: the same as kF32Atol / kF32Rtol.
constexpr DTypeTol kF32{kF32Atol, kF32Rtol, 1 - 1e-6};
// bf16 against fp32: rtol 2e-2 (STYLE §6.4). One rounding is at most 2^-9 ~ 2e-3 relative; the
// table leaves room for kernels that compute in bf16. bf16 has fp32's exponent range, so no
// subnormal floor is needed at the scales the tests use.
constexpr DTypeTol kBF16{1e-6, 2e-2, 1 - 4e-4};
// IEEE fp16 against fp32: one rounding is at most 2^-11 ~ 4.9e-4 relative for normal values and
// 2^-25 ~ 3e-8 absolute below 2^-14 (subnormals); 1e-3 and one subnormal step (2^-24 ~ 6e-8).
constexpr DTypeTol kF16{6e-8, 1e-3, 1 - 1e-6};
// A float64 sum of ~1e5 terms in another order than a sequential loop: |difference| <= n * eps *
// sum |x_i| ~ 2e-11 * sum |x_i| at worst; compared relative to sum |x_i|.
constexpr double kF64SumRtol = 1e-10;
}  // namespace cs::tol
