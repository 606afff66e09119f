// Helpers for the op tests: deterministic random inputs, fp32 <-> double copies, the backends this
// build has (every op test is instantiated once per backend, as ggml's test-backend-ops), and an
// OnDevice harness that uploads host inputs into device buffers and downloads results, so one test
// body runs unchanged on every backend.
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "backend/backend.h"
#include "backend/device_buffer.h"
#include "core/half.h"
#include "core/tensor.h"

namespace cs::test {

inline std::vector<double> randn(size_t n, double scale, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> dist(0.0, 1.0);
  std::vector<double> v(n);
  for (auto& x : v) x = double(float(scale * dist(rng)));  // exactly representable in fp32
  return v;
}

inline std::vector<float> to_f32(const std::vector<double>& v) { return {v.begin(), v.end()}; }
// bf16 bits of v (rounded to nearest even), and bf16 bits widened back (exactly).
inline std::vector<uint16_t> to_bf16(const std::vector<double>& v) {
  std::vector<uint16_t> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = f32_to_bf16(float(v[i]));
  return r;
}
inline std::vector<double> widened(const std::vector<uint16_t>& v) {
  std::vector<double> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = bf16_to_f32(v[i]);
  return r;
}

inline Tensor t(std::vector<float>& v, Shape s) { return Tensor(v.data(), s); }
inline Tensor ti(std::vector<int32_t>& v, Shape s) { return Tensor(v.data(), s, DType::I32); }

// The --device names of every backend this build has: the op tests run on each.
inline std::vector<std::string> test_backends() {
  std::vector<std::string> names = {"cpu"};
#ifdef CS_WITH_CUDA
  names.push_back("cuda");
#endif
  return names;
}

// A readable test-name piece for a scale: 0.25 -> "x0_25", 8 -> "x8", -1 -> "xm1".
inline std::string scale_name(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "x%g", s);
  std::string r(buf);
  for (char& ch : r) {
    if (ch == '.') ch = '_';
    if (ch == '-') ch = 'm';
    if (ch == '+') ch = 'p';
  }
  return r;
}

// Instance names: the backend alone ("cpu"), or the backend and the input scale ("cpu_x0_25").
inline std::string backend_param_name(const ::testing::TestParamInfo<std::string>& info) {
  return info.param;
}
inline std::string backend_scale_param_name(
    const ::testing::TestParamInfo<std::tuple<std::string, double>>& info) {
  return std::get<0>(info.param) + "_" + scale_name(std::get<1>(info.param));
}

// One backend with its context, and the device buffers of the tensors a test made on it (freed
// with the harness, before the backend).
class OnDevice {
 public:
  // A CUDA build without a visible GPU makes no backend: available() is false and the fixture's
  // SetUp skips the test with skip_reason() (CS_SKIP_WITHOUT_DEVICE).
  explicit OnDevice(const std::string& name) {
    if (name == "cuda" && cuda_device_count() == 0) return;
    backend_ = make_backend(name);
    ctx_ = backend_->make_context();
  }
  bool available() const { return backend_ != nullptr; }
  static const char* skip_reason() { return "no CUDA device is visible: the cuda instances of the op tests skip"; }
  Backend& backend() { return *backend_; }
  Ctx& ctx() { return *ctx_; }
  const Ops& ops() { return ctx_->ops; }

  // A zero-filled device tensor.
  Tensor alloc(Shape s, DType t = DType::F32) {
    buffers_.emplace_back(*backend_, size_t(s.numel()) * dtype_size(t));
    return buffers_.back().tensor(s, t);
  }
  // A device tensor of shape s holding v (v.size() == numel; the element type is the dtype's).
  template <typename T>
  Tensor upload(const std::vector<T>& v, Shape s, DType t) {
    EXPECT_EQ(size_t(s.numel()) * dtype_size(t), v.size() * sizeof(T)) << s.str();
    Tensor d = alloc(s, t);
    backend_->upload(*ctx_, v.data(), d);
    return d;
  }
  Tensor upload(const std::vector<float>& v, Shape s) { return upload(v, s, DType::F32); }
  Tensor upload(const std::vector<double>& v, Shape s) { return upload(to_f32(v), s); }
  Tensor upload(const std::vector<int32_t>& v, Shape s) { return upload(v, s, DType::I32); }
  // A device tensor's contents as T (sizeof(T) * count == t.nbytes()).
  template <typename T = float>
  std::vector<T> download(const Tensor& t) {
    std::vector<T> v(t.nbytes() / sizeof(T));
    EXPECT_EQ(v.size() * sizeof(T), t.nbytes());
    backend_->download(*ctx_, t, v.data());
    return v;
  }
  // The F64 [1] result of a reduction.
  double scalar(const Tensor& t) { return download<double>(t).at(0); }

 private:
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Ctx> ctx_;
  std::vector<DeviceBuffer> buffers_;
};

// In a fixture holding an OnDevice `dev`: skips the test when its backend has no device.
#define CS_SKIP_WITHOUT_DEVICE()                                   \
  void SetUp() override {                                          \
    if (!dev.available()) GTEST_SKIP() << dev.skip_reason();       \
  }

// Whether fn throws a cs::Error (or a subclass) whose message contains every one of parts.
template <typename Fn>
::testing::AssertionResult throws_error_naming(Fn&& fn, std::initializer_list<std::string> parts) {
  try {
    fn();
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const std::string& p : parts)
      if (msg.find(p) == std::string::npos)
        return ::testing::AssertionFailure()
               << "message \"" << msg << "\" does not name \"" << p << "\"";
    return ::testing::AssertionSuccess() << msg;
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw something other than cs::Error: " << e.what();
  }
  return ::testing::AssertionFailure() << "did not throw";
}

}  // namespace cs::test
