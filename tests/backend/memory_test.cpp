// The Backend's memory (allocate, upload / download, copy, zero, host copies) and make_backend.
#include "backend_suite.h"

namespace cs {
namespace {
using test::randn;
using test::to_f32;

// ---------------------------------------------------------------------------------------------
// The Backend's memory: allocate, upload / download, copy, zero; make_backend.

CS_BACKEND_SUITE(BackendMemory);

TEST_P(BackendMemory, NamesItsDeviceAndOps) {
  Backend& be = dev.backend();
  EXPECT_EQ(std::string(be.name()), GetParam());
  EXPECT_EQ(std::string(device_name(be.device())), GetParam());
  EXPECT_EQ(&ctx().backend, &be);
  EXPECT_EQ(&ctx().ops, &be.ops());
  EXPECT_EQ(dev.alloc({3}).device, be.device());
}

TEST_P(BackendMemory, AllocateIsZeroFilledAndAligned) {
  Backend& be = dev.backend();
  for (size_t bytes : {size_t(1), size_t(1000), size_t(1) << 20}) {
    // Dirty a block, free it, allocate the same size again (likely the same memory): zeros.
    void* p = be.allocate(bytes);
    const Tensor t(p, {int64_t(bytes)}, DType::U8, be.device());
    be.upload(ctx(), std::vector<uint8_t>(bytes, 0xAB).data(), t);
    be.deallocate(p);
    void* p2 = be.allocate(bytes);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p2) % 64, 0u) << bytes;
    EXPECT_EQ(dev.download<uint8_t>(Tensor(p2, {int64_t(bytes)}, DType::U8, be.device())),
              std::vector<uint8_t>(bytes, 0))
        << bytes;
    be.deallocate(p2);
  }
}

TEST_P(BackendMemory, UploadDownloadRoundTrip) {
  const std::vector<float> f = to_f32(randn(1001, 1, 161));
  EXPECT_EQ(dev.download(dev.upload(f, {7, 143})), f);
  const std::vector<int32_t> i = {-1, 0, 7, 1 << 30};
  EXPECT_EQ(dev.download<int32_t>(dev.upload(i, {4})), i);
  const std::vector<double> d = {1e300, -0.0, 3.25};
  EXPECT_EQ(dev.download<double>(dev.upload(d, {3}, DType::F64)), d);
  const std::vector<uint16_t> h = {0x3F80, 0xFFFF, 0};
  EXPECT_EQ(dev.download<uint16_t>(dev.upload(h, {3}, DType::BF16)), h);
  // Into rows [1, 3) of a (4, 3) tensor: the other rows stay as they were.
  Tensor big = dev.upload(std::vector<float>(12, 9.f), {4, 3});
  dev.backend().upload(ctx(), std::vector<float>(6, -1.f).data(), big.slice_rows(1, 3));
  EXPECT_EQ(dev.download(big), (std::vector<float>{9, 9, 9, -1, -1, -1, -1, -1, -1, 9, 9, 9}));
  EXPECT_EQ(dev.download(big.slice_rows(3, 4)), (std::vector<float>{9, 9, 9}));
}

TEST_P(BackendMemory, CopyBetweenTensors) {
  const std::vector<float> f = to_f32(randn(300, 1, 171));
  Tensor src = dev.upload(f, {300}), dst = dev.alloc({3, 100});
  dev.backend().copy(ctx(), src, dst);
  EXPECT_EQ(dev.download(dst), f);
  dev.backend().copy(ctx(), src, src);  // src == dst is allowed
  EXPECT_EQ(dev.download(src), f);
  // A raw copy between dtypes of the same width keeps the bits.
  Tensor bits = dev.alloc({300}, DType::I32);
  dev.backend().copy(ctx(), src, bits);
  std::vector<int32_t> want(f.size());
  std::memcpy(want.data(), f.data(), f.size() * sizeof(float));
  EXPECT_EQ(dev.download<int32_t>(bits), want);
  // Into a view: rows [2, 4) of a (5, 2) tensor.
  Tensor rows = dev.upload(std::vector<float>(10, 0.5f), {5, 2});
  dev.backend().copy(ctx(), dev.upload(std::vector<float>{1, 2, 3, 4}, {2, 2}),
                     rows.slice_rows(2, 4));
  EXPECT_EQ(dev.download(rows),
            (std::vector<float>{0.5f, 0.5f, 0.5f, 0.5f, 1, 2, 3, 4, 0.5f, 0.5f}));
}

TEST_P(BackendMemory, ZeroClearsExactlyItsView) {
  Tensor t = dev.upload(std::vector<float>(12, 3.f), {4, 3});
  dev.backend().zero(ctx(), t.slice_rows(1, 3));
  EXPECT_EQ(dev.download(t), (std::vector<float>{3, 3, 3, 0, 0, 0, 0, 0, 0, 3, 3, 3}));
  dev.backend().zero(ctx(), t);
  EXPECT_EQ(dev.download(t), std::vector<float>(12, 0.f));
  dev.backend().zero(ctx(), dev.alloc({0}));  // empty: nothing to do
  dev.backend().synchronize(ctx());
}

TEST_P(BackendMemory, HostCopyReadsAndWrites) {
  const std::vector<float> f = {1, 2, 3, 4, 5, 6};
  Tensor t = dev.upload(f, {2, 3});
  {
    HostCopy r(ctx(), t, HostCopy::kRead);
    EXPECT_EQ(std::vector<float>(static_cast<float*>(r.data()), static_cast<float*>(r.data()) + 6),
              f);
    EXPECT_EQ(r.host_tensor().device, Device::CPU);
    EXPECT_EQ(r.host_tensor().shape, t.shape);
  }
  {
    HostCopy w(ctx(), t, HostCopy::kWrite);
    for (int i = 0; i < 6; ++i) static_cast<float*>(w.data())[i] = float(-i);
    w.flush();
  }
  EXPECT_EQ(read_f32(ctx(), t), (std::vector<float>{0, -1, -2, -3, -4, -5}));
}

#ifndef CS_WITH_CUDA
TEST(MakeBackend, CudaInABuildWithoutItIsAUsageErrorNamingTheFlag) {
  try {
    make_backend("cuda");
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("--device"), std::string::npos) << e.what();
    EXPECT_EQ(e.exit_code(), 2);
  }
}
#else
TEST(MakeBackend, CudaWithoutAVisibleGpuIsOneLineNamingTheFlag) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "a GPU is visible";
  EXPECT_TRUE(test::throws_error_naming([] { make_backend("cuda"); }, {"--device cuda", "no CUDA device is visible"}));
}
#endif

TEST(MakeBackend, UnknownNameIsAUsageErrorNamingTheFlag) {
  try {
    make_backend("tpu");
    FAIL() << "no error";
  } catch (const UsageError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("--device"), std::string::npos) << msg;
    EXPECT_NE(msg.find("tpu"), std::string::npos) << msg;
    EXPECT_EQ(e.exit_code(), 2);
  }
}

TEST(MakeBackend, CpuIsAlwaysThere) {
  auto be = make_backend("cpu");
  EXPECT_STREQ(be->name(), "cpu");
  EXPECT_STREQ(cpu_backend().name(), "cpu");
  EXPECT_EQ(&cpu_backend().ops(), &cpu_ops());
}


}  // namespace
}  // namespace cs
