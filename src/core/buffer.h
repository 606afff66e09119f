// Buffer: an owning, 64-byte aligned, zero-initialised block of host memory. The only owner type
// in core; tensors are views into buffers.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "core/tensor.h"

namespace cs {

class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(size_t bytes) { resize(bytes); }
  void resize(size_t bytes) {
    size_t rounded = (bytes + 63) / 64 * 64;
    void* p = rounded ? std::aligned_alloc(64, rounded) : nullptr;
    CS_CHECK(!rounded || p) << "out of memory allocating " << bytes << " bytes";
    if (p) std::memset(p, 0, rounded);
    ptr_.reset(p);
    bytes_ = bytes;
  }
  void* data() const { return ptr_.get(); }
  size_t bytes() const { return bytes_; }
  float* f32() const { return static_cast<float*>(ptr_.get()); }
  Tensor tensor(Shape s, DType t = DType::F32) const {
    CS_CHECK(size_t(s.numel()) * dtype_size(t) <= bytes_) << "tensor " << s.str() << " exceeds buffer";
    return Tensor(ptr_.get(), s, t);
  }

 private:
  struct Free { void operator()(void* p) const { std::free(p); } };
  std::unique_ptr<void, Free> ptr_;
  size_t bytes_ = 0;
};

}  // namespace cs
