// Host access to device memory, at the edges only (checkpoint and Hugging Face I/O, evaluation
// output, sampling): explicit copies. On a backend whose memory the host may touch (is_host) the
// copy is skipped and the host works on the tensor itself; elsewhere a staging copy is made.
#pragma once
#include <cstdint>
#include <vector>

#include "backend/backend.h"

namespace cs {

// The host's window onto one device tensor.
//   HostCopy h(ctx, t, HostCopy::kRead);   h.data() holds t's contents
//   HostCopy h(ctx, t, HostCopy::kWrite);  fill h.data(), then h.flush() copies it into t
class HostCopy {
 public:
  enum Mode { kRead, kWrite };
  HostCopy(Ctx& ctx, const Tensor& t, Mode mode);
  HostCopy(HostCopy&&) = default;
  HostCopy(const HostCopy&) = delete;
  // The host bytes, as the tensor's dtype.
  void* data() { return host_; }
  // A host tensor (Device::CPU) over data(), with t's shape and dtype.
  Tensor host_tensor() const { return Tensor(host_, t_.shape, t_.dtype, Device::CPU); }
  // kWrite: copies data() into the tensor (a no-op on host memory, which was written directly).
  void flush();

 private:
  Ctx* ctx_;
  Tensor t_;
  std::vector<uint8_t> staging_;
  void* host_ = nullptr;
};

// A small device tensor's values on the host (a copy), e.g. a reduction's result.
std::vector<double> read_f64(Ctx& ctx, const Tensor& t);
std::vector<float> read_f32(Ctx& ctx, const Tensor& t);

}  // namespace cs
