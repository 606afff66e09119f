// Tensor: a non-owning view (dtype, shape, device, pointer). Contiguous row-major, at most 4 dims.
// It carries no autograd state and never allocates; buffers belong to whoever made them
// (the model's parameter buffer, an activation plan, a mapped file).
#pragma once
#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "core/error.h"

namespace cs {

enum class DType : uint8_t { F32, F64, BF16, F16, I64, I32, I16, U16, I8, U8 };
enum class Device : uint8_t { CPU, CUDA };

// Bytes per element of a dtype.
size_t dtype_size(DType t);
// The safetensors spelling of a dtype ("F32", "BF16", ...).
const char* dtype_name(DType t);

struct Shape {
  std::array<int64_t, 4> dims{};
  int ndim = 0;
  Shape() = default;
  Shape(std::initializer_list<int64_t> d);
  int64_t operator[](int i) const { return dims[i < 0 ? i + ndim : i]; }
  int64_t numel() const;
  bool operator==(const Shape& o) const;
  bool operator!=(const Shape& o) const { return !(*this == o); }
  std::string str() const;  // "[3, 4]"
};

struct Tensor {
  void* data = nullptr;
  Shape shape;
  DType dtype = DType::F32;
  Device device = Device::CPU;

  Tensor() = default;
  Tensor(void* p, Shape s, DType t = DType::F32, Device d = Device::CPU)
      : data(p), shape(s), dtype(t), device(d) {}
  int64_t numel() const { return shape.numel(); }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype); }
  int64_t size(int i) const { return shape[i]; }
  int ndim() const { return shape.ndim; }
  float* f32() const {
    CS_DCHECK(dtype == DType::F32);
    return static_cast<float*>(data);
  }
  int32_t* i32() const {
    CS_DCHECK(dtype == DType::I32);
    return static_cast<int32_t*>(data);
  }
  // The same memory seen with another shape of equal element count.
  Tensor view(Shape s) const;
  // Rows [begin, end) of the leading dimension.
  Tensor slice_rows(int64_t begin, int64_t end) const;
};

}  // namespace cs
