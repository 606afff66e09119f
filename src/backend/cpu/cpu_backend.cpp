// The CPU backend: host memory (64-byte aligned, zero-filled), copies as memcpy, a context with no
// stream (every op has finished when it returns) and the CPU op table.
#include <cstdlib>
#include <cstring>

#include <fmt/core.h>

#include "backend/cpu/ops.h"
#include "backend/op_check.h"

namespace cs {

namespace {
class CpuBackend final : public Backend {
 public:
  const char* name() const override { return "cpu"; }
  Device device() const override { return Device::CPU; }
  bool is_host() const override { return true; }
  const Ops& ops() const override { return cpu_ops(); }
  std::unique_ptr<Ctx> make_context() override { return std::make_unique<Ctx>(*this, cpu_ops()); }

  void* allocate(size_t bytes) override {
    const size_t rounded = (bytes + 63) / 64 * 64;
    void* p = rounded ? std::aligned_alloc(64, rounded) : nullptr;
    if (rounded && !p)
      throw Error(fmt::format("[cpu] out of memory allocating {} bytes. Hint: a smaller "
                              "--micro-batch-size or --seq-length, or --recompute-granularity full",
                              bytes));
    if (p) std::memset(p, 0, rounded);
    return p;
  }
  void deallocate(void* p) noexcept override { std::free(p); }
  void upload(Ctx&, const void* host, const Tensor& dst) override {
    check_arg("upload", "dst", dst, dst.dtype, Device::CPU);
    if (dst.nbytes()) std::memcpy(dst.data, host, dst.nbytes());
  }
  void download(Ctx&, const Tensor& src, void* host) override {
    check_arg("download", "src", src, src.dtype, Device::CPU);
    if (src.nbytes()) std::memcpy(host, src.data, src.nbytes());
  }
  void copy(Ctx&, const Tensor& src, const Tensor& dst) override {
    check_arg("copy", "src", src, src.dtype, Device::CPU);
    check_arg("copy", "dst", dst, dst.dtype, Device::CPU);
    CS_CHECK(src.nbytes() == dst.nbytes()) << "copy " << src.shape.str() << " -> " << dst.shape.str();
    if (src.data != dst.data && src.nbytes()) std::memmove(dst.data, src.data, src.nbytes());
  }
  void zero(Ctx&, const Tensor& t) override {
    check_arg("zero", "t", t, t.dtype, Device::CPU);
    if (t.nbytes()) std::memset(t.data, 0, t.nbytes());
  }
  void synchronize(Ctx&) override {}
};
}  // namespace

Backend& cpu_backend() {
  static CpuBackend b;
  return b;
}

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace cs
