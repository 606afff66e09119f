// Reductions of an f32 tensor to one float64, written into an F64 [1] tensor: sum, sum of
// squares and the count of zeros (exact below 2^53 elements). The summation order is fixed, whatever the thread count: the elements are cut into
// blocks of kBlock, one thread sums a block in double in a fixed order (block_sum), and the block
// sums are added in block order. (An OpenMP reduction clause combines its partials in an unspecified order: the
// gradient norm's last bits changed with OMP_NUM_THREADS.) inf and nan propagate.
// x: any shape, f32 (sum also f64: partial sums added up); out: F64 [1].
#include <algorithm>
#include <vector>

#include "backend/cpu/ops.h"
#include "backend/op_check.h"

namespace cs::cpu {

namespace {
// Part of the result's definition (it fixes the order), not a tuning knob.
constexpr int64_t kBlock = int64_t(1) << 14;

// What each element adds: itself, its square, or 1 when it is zero (-0 included, NaN not: as
// torch.count_nonzero counts).
enum class Fold { kSum, kSquares, kZeros };
template <Fold kFold>
inline double fold(double v) {
  if constexpr (kFold == Fold::kSquares) return v * v;
  if constexpr (kFold == Fold::kZeros) return v == 0.0 ? 1.0 : 0.0;
  return v;
}

// A block's sum over 16 lanes (lane l takes the elements i = l mod 16), the lanes added in order,
// then the tail: a fixed order that vectorises (one sequential sum would be a scalar chain).
constexpr int kLanes = 16;
template <Fold kFold, typename T>
double block_sum(const T* p, int64_t n) {
  double lane[kLanes] = {};
  const int64_t nb = n / kLanes * kLanes;
  for (int64_t i = 0; i < nb; i += kLanes)
    for (int l = 0; l < kLanes; ++l) lane[l] += fold<kFold>(double(p[i + l]));
  double s = 0.0;
  for (int l = 0; l < kLanes; ++l) s += lane[l];
  for (int64_t i = nb; i < n; ++i) s += fold<kFold>(double(p[i]));
  return s;
}

template <Fold kFold, typename T>
void reduce(const char* op, const Tensor& x, const Tensor& out) {
  check_arg(op, "out", out, DType::F64, Device::CPU);
  CS_CHECK(out.numel() == 1) << op << " out " << out.shape.str() << ": expected [1]";
  const int64_t n = x.numel(), nb = (n + kBlock - 1) / kBlock;
  const T* p = static_cast<const T*>(x.data);
  thread_local std::vector<double> partial;  // the calling thread's scratch, reused across calls
  partial.resize(size_t(nb));
  double* part = partial.data();
#pragma omp parallel for schedule(static) if (nb > 1)
  for (int64_t b = 0; b < nb; ++b)
    part[b] = block_sum<kFold, T>(p + b * kBlock, std::min(kBlock, n - b * kBlock));
  double s = 0.0;
  for (int64_t b = 0; b < nb; ++b) s += part[b];
  *static_cast<double*>(out.data) = s;
}
}  // namespace

void sum(Ctx&, const Tensor& x, const Tensor& out) {
  if (x.dtype == DType::F64 && x.device == Device::CPU) {
    reduce<Fold::kSum, double>("sum", x, out);
    return;
  }
  check_f32("sum", "x", x, Device::CPU);
  reduce<Fold::kSum, float>("sum", x, out);
}

void sum_squares(Ctx&, const Tensor& x, const Tensor& out) {
  check_f32("sum_squares", "x", x, Device::CPU);
  reduce<Fold::kSquares, float>("sum_squares", x, out);
}

void count_zeros(Ctx&, const Tensor& x, const Tensor& out) {
  check_f32("count_zeros", "x", x, Device::CPU);
  reduce<Fold::kZeros, float>("count_zeros", x, out);
}

}  // namespace cs::cpu
