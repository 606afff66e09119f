#include "backend/host_copy.h"

namespace cs {

HostCopy::HostCopy(Ctx& ctx, const Tensor& t, Mode mode) : ctx_(&ctx), t_(t) {
  if (ctx.backend.is_host()) {
    if (mode == kRead) ctx.backend.synchronize(ctx);
    host_ = t.data;
    return;
  }
  staging_.resize(t.nbytes());
  host_ = staging_.data();
  if (mode == kRead) ctx.backend.download(ctx, t, host_);
}

void HostCopy::flush() {
  if (!staging_.empty()) ctx_->backend.upload(*ctx_, host_, t_);
}

std::vector<double> read_f64(Ctx& ctx, const Tensor& t) {
  CS_CHECK(t.dtype == DType::F64) << dtype_name(t.dtype);
  std::vector<double> v(size_t(t.numel()));
  ctx.backend.download(ctx, t, v.data());
  return v;
}

std::vector<float> read_f32(Ctx& ctx, const Tensor& t) {
  CS_CHECK(t.dtype == DType::F32) << dtype_name(t.dtype);
  std::vector<float> v(size_t(t.numel()));
  ctx.backend.download(ctx, t, v.data());
  return v;
}

}  // namespace cs
