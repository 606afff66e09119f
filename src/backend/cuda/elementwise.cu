// add_inplace (y += x) and scale (x *= alpha), f32, grid-stride loops over float4 where the
// pointers allow (the residual adds and the gradient scaling are memory-bound).
#include "backend/cuda/common.cuh"
#include "backend/cuda/ops.h"

namespace cs::cuda {

namespace {
__global__ void add_kernel(float* y, const float* x, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] += x[i];
}
__global__ void add4_kernel(float4* y, const float4* x, int64_t n4) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n4; i += int64_t(gridDim.x) * blockDim.x) {
    float4 a = y[i];
    const float4 b = x[i];
    a.x += b.x, a.y += b.y, a.z += b.z, a.w += b.w;
    y[i] = a;
  }
}
__global__ void scale_kernel(float* x, float alpha, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    x[i] *= alpha;
}
bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }
}  // namespace

void add_inplace(Ctx& c, const Tensor& y, const Tensor& x) {
  check_f32("add_inplace", "y", y, Device::CUDA);
  check_f32("add_inplace", "x", x, Device::CUDA);
  CS_CHECK(y.numel() == x.numel()) << y.shape.str() << x.shape.str();
  const int64_t n = y.numel();
  if (!n) return;
  if (n % 4 == 0 && aligned16(y.data) && aligned16(x.data))
    add4_kernel<<<blocks_for(n / 4, 256, 8192), 256, 0, stream(c)>>>(ptr<float4>(y), ptr<float4>(x), n / 4);
  else
    add_kernel<<<blocks_for(n, 256, 8192), 256, 0, stream(c)>>>(ptr<float>(y), ptr<float>(x), n);
  check_launch("add_inplace");
}

void scale(Ctx& c, const Tensor& x, float alpha) {
  check_f32("scale", "x", x, Device::CUDA);
  if (!x.numel()) return;
  scale_kernel<<<blocks_for(x.numel(), 256, 8192), 256, 0, stream(c)>>>(ptr<float>(x), alpha, x.numel());
  check_launch("scale");
}

}  // namespace cs::cuda
