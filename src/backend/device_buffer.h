// DeviceBuffer: an owning block of one backend's memory (zero-filled, 64-byte aligned), the only
// way model/, optim/ and train/ hold device memory. Tensors are views into it, made with the
// buffer's device. Move-only; freed through the backend that allocated it.
#pragma once
#include <cstddef>

#include "backend/backend.h"

namespace cs {

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(Backend& backend, size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& o) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  size_t bytes() const { return bytes_; }
  Backend* backend() const { return backend_; }
  // A view of shape s and dtype t starting byte_offset bytes in; must fit the buffer.
  Tensor tensor(Shape s, DType t = DType::F32, size_t byte_offset = 0) const;

 private:
  Backend* backend_ = nullptr;
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// Hands out consecutive 64-byte aligned tensors of one buffer: sized first with a null buffer
// (measure), then carved from the real one with the same calls.
class TensorCarver {
 public:
  explicit TensorCarver(const DeviceBuffer* buffer = nullptr) : buffer_(buffer) {}
  Tensor take(Shape s, DType t = DType::F32);
  size_t used() const { return used_; }

 private:
  const DeviceBuffer* buffer_;
  size_t used_ = 0;
};

}  // namespace cs
