// The CUDA backend: device memory (cudaMalloc, zero-filled), copies on the context's stream, and
// contexts that each own a non-blocking stream, a cuBLASLt handle and a workspace. A rank picks
// its GPU from its node-local rank (Open MPI, MPICH, Slurm or torchrun's variables) modulo the
// visible devices, so one process per GPU needs no flag.
#include <cublasLt.h>
#include <cstdlib>

#include "backend/cuda/common.cuh"
#include "backend/cuda/cublaslt.cuh"
#include "backend/cuda/ops.h"

namespace cs {
namespace cuda {

void check(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return;
  throw Error(str("[cuda] ", what, ": ", cudaGetErrorString(e), " (", cudaGetErrorName(e), ")"));
}

void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

namespace {
// The workspace each context carries: cuBLASLt's scratch and the ops' staging (the reductions'
// partial sums, the bf16 logits gradient's f32 rows).
constexpr size_t kWorkspaceBytes = size_t(64) << 20;

int local_rank() {
  for (const char* v : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID", "LOCAL_RANK"})
    if (const char* s = std::getenv(v); s && *s) return std::atoi(s);
  return 0;
}

struct CudaCtx final : Ctx {
  int device;
  void* workspace_mem = nullptr;
  CudaCtx(Backend& b, int dev) : Ctx(b, cuda_ops()), device(dev) {
    try {
      check(cudaSetDevice(dev), "cudaSetDevice");
      cudaStream_t s = nullptr;
      check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
      stream = s;
      cublasLtHandle_t h = nullptr;
      if (lt().create(&h) != CUBLAS_STATUS_SUCCESS) throw Error("[cuda] cublasLtCreate failed");
      blas = h;
      check(cudaMalloc(&workspace_mem, kWorkspaceBytes), "cudaMalloc (context workspace)");
      workspace = Tensor(workspace_mem, {int64_t(kWorkspaceBytes)}, DType::U8, Device::CUDA);
    } catch (...) {
      release();  // a constructor that throws runs no destructor
      throw;
    }
  }
  ~CudaCtx() override { release(); }
  void release() noexcept {
    if (stream) cudaStreamSynchronize(static_cast<cudaStream_t>(stream));
    if (workspace_mem) cudaFree(workspace_mem);
    if (blas) lt().destroy(static_cast<cublasLtHandle_t>(blas));
    if (stream) cudaStreamDestroy(static_cast<cudaStream_t>(stream));
    workspace_mem = blas = stream = nullptr;
  }
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int dev) : device_(dev) {
    check(cudaSetDevice(dev), "cudaSetDevice");
    // Stream-ordered scratch (cudaMallocAsync: operands rounded for a GEMM, attention's scratch
    // beyond the workspace) stays in the pool between steps instead of going back to the driver at
    // every synchronisation.
    cudaMemPool_t pool = nullptr;
    check(cudaDeviceGetDefaultMemPool(&pool, dev), "cudaDeviceGetDefaultMemPool");
    uint64_t keep = UINT64_MAX;
    check(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep), "cudaMemPoolSetAttribute");
  }
  const char* name() const override { return "cuda"; }
  Device device() const override { return Device::CUDA; }
  bool is_host() const override { return false; }
  const Ops& ops() const override { return cuda_ops(); }
  std::unique_ptr<Ctx> make_context() override { return std::make_unique<CudaCtx>(*this, device_); }

  void* allocate(size_t bytes) override {
    if (!bytes) return nullptr;
    const size_t rounded = (bytes + 255) / 256 * 256;
    void* p = nullptr;
    check(cudaSetDevice(device_), "cudaSetDevice");
    if (cudaMalloc(&p, rounded) != cudaSuccess) {
      cudaGetLastError();  // clear the (non-sticky) allocation error
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      throw Error(str("[cuda] out of GPU memory allocating ", bytes, " bytes (", free_b >> 20, " of ", total_b >> 20,
                      " MiB free). Hint: a smaller --micro-batch-size or --seq-length, --recompute-granularity "
                      "full, or more tensor/pipeline parallelism"));
    }
    // Zeroed before any context's stream can use it: cudaMemset runs on the legacy stream, which
    // the contexts' non-blocking streams do not wait for (an upload could land before the zeros).
    check(cudaMemset(p, 0, rounded), "cudaMemset");
    check(cudaDeviceSynchronize(), "cudaMemset");
    return p;
  }
  void deallocate(void* p) noexcept override {
    if (p) cudaFree(p);
  }
  void upload(Ctx& c, const void* host, const Tensor& dst) override {
    check_arg("upload", "dst", dst, dst.dtype, Device::CUDA);
    if (!dst.nbytes()) return;
    check(cudaMemcpyAsync(dst.data, host, dst.nbytes(), cudaMemcpyHostToDevice, stream(c)), "upload");
    check(cudaStreamSynchronize(stream(c)), "upload");  // the host buffer may be reused on return
  }
  void download(Ctx& c, const Tensor& src, void* host) override {
    check_arg("download", "src", src, src.dtype, Device::CUDA);
    if (!src.nbytes()) return;
    check(cudaMemcpyAsync(host, src.data, src.nbytes(), cudaMemcpyDeviceToHost, stream(c)), "download");
    check(cudaStreamSynchronize(stream(c)), "download");
  }
  void copy(Ctx& c, const Tensor& src, const Tensor& dst) override {
    check_arg("copy", "src", src, src.dtype, Device::CUDA);
    check_arg("copy", "dst", dst, dst.dtype, Device::CUDA);
    CS_CHECK(src.nbytes() == dst.nbytes()) << "copy " << src.shape.str() << " -> " << dst.shape.str();
    if (src.data == dst.data || !src.nbytes()) return;
    check(cudaMemcpyAsync(dst.data, src.data, src.nbytes(), cudaMemcpyDeviceToDevice, stream(c)), "copy");
  }
  void zero(Ctx& c, const Tensor& t) override {
    check_arg("zero", "t", t, t.dtype, Device::CUDA);
    if (t.nbytes()) check(cudaMemsetAsync(t.data, 0, t.nbytes(), stream(c)), "zero");
  }
  void synchronize(Ctx& c) override { check(cudaStreamSynchronize(stream(c)), "synchronize"); }

 private:
  int device_;
};
}  // namespace
}  // namespace cuda

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

std::unique_ptr<Backend> make_cuda_backend() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    cudaGetLastError();
    // The runtime's reason tells a missing GPU from a driver too old for this CUDA, or none at all.
    throw Error(cuda::str("--device cuda: no CUDA device is visible to this process (cudaGetDeviceCount: ",
                          e == cudaSuccess ? "no device" : cudaGetErrorString(e),
                          "). Hint: check nvidia-smi and CUDA_VISIBLE_DEVICES, or use --device cpu"));
  }
  return std::make_unique<cuda::CudaBackend>(cuda::local_rank() % n);
}

}  // namespace cs
