#include "backend/device_buffer.h"

#include <utility>

namespace cs {

DeviceBuffer::DeviceBuffer(Backend& backend, size_t bytes) : backend_(&backend), bytes_(bytes) {
  ptr_ = bytes ? backend.allocate(bytes) : nullptr;
}

DeviceBuffer::~DeviceBuffer() {
  if (ptr_) backend_->deallocate(ptr_);
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& o) noexcept
    : backend_(o.backend_), ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    if (ptr_) backend_->deallocate(ptr_);
    backend_ = o.backend_;
    ptr_ = std::exchange(o.ptr_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
  }
  return *this;
}

Tensor DeviceBuffer::tensor(Shape s, DType t, size_t byte_offset) const {
  const size_t need = size_t(s.numel()) * dtype_size(t);
  CS_CHECK(byte_offset + need <= bytes_)
      << "tensor " << s.str() << " at byte " << byte_offset << " exceeds a buffer of " << bytes_;
  return Tensor(ptr_ ? static_cast<char*>(ptr_) + byte_offset : nullptr, s, t,
                backend_ ? backend_->device() : Device::CPU);
}

Tensor TensorCarver::take(Shape s, DType t) {
  const size_t bytes = size_t(s.numel()) * dtype_size(t);
  Tensor r = buffer_ ? buffer_->tensor(s, t, used_) : Tensor(nullptr, s, t);
  used_ += (bytes + 63) / 64 * 64;
  return r;
}

}  // namespace cs
