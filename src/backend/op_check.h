// Argument checks shared by every backend's ops: dtype and device of a tensor argument. A mismatch
// is a cs::Error naming the op, the argument and what was expected ("[matmul] b: expected f32 on
// cpu, got bf16 on cpu"), so a wrong dtype reaching a kernel is a clear failure, never garbage.
#pragma once
#include <initializer_list>

#include "core/tensor.h"

namespace cs {

// Throws cs::Error unless t has dtype `dtype` and lives on `device`.
void check_arg(const char* op, const char* arg, const Tensor& t, DType dtype, Device device);
// check_arg for an f32 argument.
inline void check_f32(const char* op, const char* arg, const Tensor& t, Device device) {
  check_arg(op, arg, t, DType::F32, device);
}
// check_f32 for each (name, tensor) of an op, in order: check_f32_args("matmul", d, {{"a", &a}, ...}).
struct NamedArg {
  const char* name;
  const Tensor* tensor;
};
inline void check_f32_args(const char* op, Device device, std::initializer_list<NamedArg> args) {
  for (const NamedArg& a : args) check_arg(op, a.name, *a.tensor, DType::F32, device);
}
// Throws cs::Error unless t is f32 or bf16 on `device` (the arguments a kernel reads or writes in
// either storage dtype, computing in f32).
void check_f32_or_bf16(const char* op, const char* arg, const Tensor& t, Device device);
// Throws cs::Error unless t is f32, bf16 or f16 on `device` (the CUDA table's storage dtypes:
// --fp16 runs there with f16 compute copies and activations).
void check_float(const char* op, const char* arg, const Tensor& t, Device device);
// Throws cs::Error unless the two arguments have equal shapes.
void check_same_shape(const char* op, const char* a_name, const Tensor& a, const char* b_name,
                      const Tensor& b);

const char* device_name(Device d);

// The sizes of c = op(a) @ op(b) (2-D a, b, out): m x k times k x n; a shape mismatch is a
// CS_CHECK failure naming the three shapes. Shared by every backend's matmul.
struct MatmulDims {
  int64_t m, n, k;
};
MatmulDims matmul_dims(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, const Tensor& out);

// cast's dtype rule on every backend: f32 <-> bf16, f32 <-> f16 or the same dtype; any other
// pair is a cs::Error naming both. Equal element counts (CS_CHECK).
void check_cast_pair(const Tensor& x, const Tensor& y);

}  // namespace cs
