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
}  // namespace cs::tol
