#include "backend/op_check.h"

#include <fmt/core.h>

namespace cs {

const char* device_name(Device d) { return d == Device::CUDA ? "cuda" : "cpu"; }

namespace {
std::string lower(const char* s) {
  std::string r(s);
  for (char& ch : r) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  return r;
}
}  // namespace

void check_arg(const char* op, const char* arg, const Tensor& t, DType dtype, Device device) {
  if (t.dtype == dtype && t.device == device) return;
  throw Error(fmt::format("[{}] argument {}: expected {} on {}, got {} on {}", op, arg,
                          lower(dtype_name(dtype)), device_name(device), lower(dtype_name(t.dtype)),
                          device_name(t.device)));
}

void check_f32_or_bf16(const char* op, const char* arg, const Tensor& t, Device device) {
  if ((t.dtype == DType::F32 || t.dtype == DType::BF16) && t.device == device) return;
  throw Error(fmt::format("[{}] argument {}: expected f32 or bf16 on {}, got {} on {}", op, arg,
                          device_name(device), lower(dtype_name(t.dtype)), device_name(t.device)));
}

void check_float(const char* op, const char* arg, const Tensor& t, Device device) {
  if ((t.dtype == DType::F32 || t.dtype == DType::BF16 || t.dtype == DType::F16) && t.device == device) return;
  throw Error(fmt::format("[{}] argument {}: expected f32, bf16 or f16 on {}, got {} on {}", op, arg,
                          device_name(device), lower(dtype_name(t.dtype)), device_name(t.device)));
}

MatmulDims matmul_dims(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, const Tensor& out) {
  CS_CHECK(a.ndim() == 2 && b.ndim() == 2 && out.ndim() == 2) << a.shape.str() << b.shape.str() << out.shape.str();
  const int64_t m = trans_a ? a.size(1) : a.size(0), k = trans_a ? a.size(0) : a.size(1);
  const int64_t kb = trans_b ? b.size(1) : b.size(0), n = trans_b ? b.size(0) : b.size(1);
  CS_CHECK(k == kb && out.size(0) == m && out.size(1) == n)
      << "matmul a" << a.shape.str() << (trans_a ? "^T" : "") << " b" << b.shape.str() << (trans_b ? "^T" : "")
      << " out" << out.shape.str();
  return {m, n, k};
}

void check_cast_pair(const Tensor& x, const Tensor& y) {
  const DType from = x.dtype, to = y.dtype;
  const bool f32_half = from == DType::F32 && (to == DType::BF16 || to == DType::F16);
  const bool half_f32 = to == DType::F32 && (from == DType::BF16 || from == DType::F16);
  if (from != to && !f32_half && !half_f32)
    throw Error(fmt::format("[cast] x {} -> y {}: expected f32 <-> bf16, f32 <-> f16 or the same dtype",
                            lower(dtype_name(from)), lower(dtype_name(to))));
  CS_CHECK(x.numel() == y.numel()) << "cast " << x.shape.str() << " -> " << y.shape.str();
}

void check_same_shape(const char* op, const char* a_name, const Tensor& a, const char* b_name,
                      const Tensor& b) {
  if (a.shape == b.shape) return;
  throw Error(fmt::format("[{}] argument {} {} and argument {} {}: expected equal shapes", op, a_name,
                          a.shape.str(), b_name, b.shape.str()));
}

}  // namespace cs
