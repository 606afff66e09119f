#include "core/tensor.h"

namespace cs {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F64: case DType::I64: return 8;
    case DType::F32: case DType::I32: return 4;
    case DType::BF16: case DType::F16: case DType::I16: case DType::U16: return 2;
    case DType::I8: case DType::U8: return 1;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
    case DType::I64: return "I64";
    case DType::I32: return "I32";
    case DType::I16: return "I16";
    case DType::U16: return "U16";
    case DType::I8: return "I8";
    case DType::U8: return "U8";
  }
  return "?";
}

Shape::Shape(std::initializer_list<int64_t> d) {
  CS_CHECK(d.size() <= 4) << "at most 4 dims, got " << d.size();
  for (int64_t x : d) dims[ndim++] = x;
}

int64_t Shape::numel() const {
  int64_t n = 1;
  // Sizes from files and flags are validated before any shape is made of them: an overflow here
  // is a missed validation, a bug, and must not wrap into a small buffer.
  for (int i = 0; i < ndim; ++i) CS_CHECK(!__builtin_mul_overflow(n, dims[i], &n)) << "numel of " << str() << " overflows";
  return n;
}

bool Shape::operator==(const Shape& o) const {
  if (ndim != o.ndim) return false;
  for (int i = 0; i < ndim; ++i)
    if (dims[i] != o.dims[i]) return false;
  return true;
}

std::string Shape::str() const {
  std::string s = "[";
  for (int i = 0; i < ndim; ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

Tensor Tensor::view(Shape s) const {
  CS_CHECK(s.numel() == numel()) << "view " << s.str() << " of " << shape.str();
  return Tensor(data, s, dtype, device);
}

Tensor Tensor::slice_rows(int64_t begin, int64_t end) const {
  CS_CHECK(ndim() >= 1 && 0 <= begin && begin <= end && end <= shape[0])
      << "rows [" << begin << ", " << end << ") of " << shape.str();
  Shape s = shape;
  s.dims[0] = end - begin;
  int64_t row = ndim() ? numel() / (shape[0] ? shape[0] : 1) : 0;
  return Tensor(static_cast<char*>(data) + begin * row * dtype_size(dtype), s, dtype, device);
}

}  // namespace cs
