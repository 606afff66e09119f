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

void check_same_shape(const char* op, const char* a_name, const Tensor& a, const char* b_name,
                      const Tensor& b) {
  if (a.shape == b.shape) return;
  throw Error(fmt::format("[{}] argument {} {} and argument {} {}: expected equal shapes", op, a_name,
                          a.shape.str(), b_name, b.shape.str()));
}

}  // namespace cs
