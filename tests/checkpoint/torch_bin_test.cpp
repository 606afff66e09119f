// TorchBinFile and HfWeights over checkpoints written by real torch.save
// (tools/reference/make_torch_bin_fixtures.py): every dtype, views at a storage offset, protocol 4,
// sharded directories, and the tiny Baichuan re-saved as .bin giving byte-identical weights to
// its safetensors original. Plus a hand-built ZIP64 archive larger than 4 GiB (a sparse file).
#include "checkpoint/torch_bin.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "checkpoint/hf_dir.h"
#include "core/half.h"
#include "torch_zip_builder.h"

namespace cs {
namespace {

namespace fs = std::filesystem;
using testing::HasSubstr;

const std::string kFixtures = std::string(CS_SOURCE_DIR) + "/tests/fixtures/torch_bin/";

std::vector<float> read_all(const WeightFile& f, const std::string& name) {
  std::vector<float> out(size_t(f.shape(name).numel()));
  f.read_f32(name, out.data(), int64_t(out.size()));
  return out;
}

template <typename T>
std::vector<T> raw(const WeightFile& f, const std::string& name) {
  Tensor t = f.tensor(name);
  EXPECT_EQ(dtype_size(t.dtype), sizeof(T));
  std::vector<T> out(size_t(t.numel()));
  std::memcpy(out.data(), t.data, t.nbytes());
  return out;
}

TEST(TorchBin, TinyHoldsEveryDtypeInStateDictOrder) {
  TorchBinFile f(kFixtures + "tiny.bin");
  EXPECT_EQ(f.prefix(), "tiny");
  EXPECT_EQ(f.names(), (std::vector<std::string>{"f32", "f16", "bf16", "f64", "i64", "i32", "bool",
                                                 "scalar", "empty", "param", "base", "view"}));
  EXPECT_EQ(f.dtype("f32"), DType::F32);
  EXPECT_EQ(f.shape("f32"), Shape({3, 4}));
  std::vector<float> f32 = read_all(f, "f32");
  for (int i = 0; i < 12; ++i) EXPECT_EQ(f32[size_t(i)], float(i) * 0.25f - 1.f);

  EXPECT_EQ(f.dtype("f16"), DType::F16);
  EXPECT_EQ(read_all(f, "f16"), (std::vector<float>{1.f, -2.5f, 0.125f, 65504.f}));
  EXPECT_EQ(f.dtype("bf16"), DType::BF16);
  EXPECT_EQ(read_all(f, "bf16"), (std::vector<float>{1.f, -0.5f, 3.140625f, -256.f}));
  EXPECT_EQ(f.dtype("f64"), DType::F64);
  EXPECT_EQ(read_all(f, "f64"), (std::vector<float>{0.5f, -1.25f}));

  EXPECT_EQ(f.dtype("i64"), DType::I64);
  EXPECT_EQ(raw<int64_t>(f, "i64"), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(f.dtype("i32"), DType::I32);
  EXPECT_EQ(raw<int32_t>(f, "i32"), (std::vector<int32_t>{-7, 0, 7}));
  EXPECT_EQ(f.dtype("bool"), DType::U8);
  EXPECT_EQ(raw<uint8_t>(f, "bool"), (std::vector<uint8_t>{1, 0, 1}));
  std::vector<float> dst(5);
  try {
    f.read_f32("i64", dst.data(), 5);
    ADD_FAILURE() << "read_f32 of an I64 tensor must throw";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("[torch_bin] " + f.path()));
    EXPECT_THAT(e.what(), HasSubstr("'i64' has dtype I64"));
  }

  EXPECT_EQ(f.shape("scalar").ndim, 0);
  EXPECT_EQ(read_all(f, "scalar"), std::vector<float>{3.5f});
  EXPECT_EQ(f.shape("empty"), Shape({0, 3}));
  EXPECT_TRUE(read_all(f, "empty").empty());
  EXPECT_EQ(read_all(f, "param"), (std::vector<float>{2.f, -3.f}));  // _rebuild_parameter
}

TEST(TorchBin, ViewAtStorageOffsetReadsItsOwnElements) {
  TorchBinFile f(kFixtures + "tiny.bin");
  EXPECT_EQ(f.shape("view"), Shape({2, 3}));
  EXPECT_EQ(read_all(f, "view"), (std::vector<float>{2.f, 2.5f, 3.f, 3.5f, 4.f, 4.5f}));
  // Same storage: the view's first element is base[4] in the map, not a copy.
  EXPECT_EQ(static_cast<uint8_t*>(f.tensor("view").data),
            static_cast<uint8_t*>(f.tensor("base").data) + 4 * sizeof(float));
  std::vector<float> rows(3);
  f.read_f32_rows("view", 1, 2, rows.data());
  EXPECT_EQ(rows, (std::vector<float>{3.5f, 4.f, 4.5f}));
  std::vector<float> row2(4);
  f.read_f32_rows("f32", 2, 3, row2.data());
  EXPECT_EQ(row2, (std::vector<float>{1.f, 1.25f, 1.5f, 1.75f}));
}

TEST(TorchBin, PickleProtocol4) {
  TorchBinFile f = TorchBinFile::open(kFixtures + "tiny_proto4.bin");
  EXPECT_EQ(f.names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(read_all(f, "a"), (std::vector<float>{1.5f, -2.f}));
  EXPECT_EQ(f.dtype("b"), DType::F16);
  EXPECT_EQ(read_all(f, "b"), std::vector<float>(4, 1.f));
}

TEST(TorchBin, ShardedDirectoryThroughHfWeights) {
  HfWeights w(kFixtures + "sharded");
  EXPECT_EQ(w.names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(&w.file_of("a"), &w.file_of("b"));
  EXPECT_NE(&w.file_of("a"), &w.file_of("c"));
  EXPECT_THAT(w.file_of("c").path(), HasSubstr("pytorch_model-00002-of-00002.bin"));
  std::vector<float> a(3), b(2), c(2);
  w.read_f32("a", a.data(), 3);
  w.read_f32("b", b.data(), 2);
  w.read_f32("c", c.data(), 2);
  EXPECT_EQ(a, (std::vector<float>{1.f, 2.f, 3.f}));
  EXPECT_EQ(w.shape("b"), Shape({1, 2}));
  EXPECT_EQ(b, (std::vector<float>{0.5f, -0.5f}));
  EXPECT_EQ(c, (std::vector<float>{-1.f, 0.25f}));
}

// The key check: the tiny Baichuan saved by torch.save loads byte-identical to its safetensors.
TEST(TorchBin, RopeModelBinIsByteIdenticalToSafetensors) {
  SafetensorsFile st(std::string(CS_SOURCE_DIR) + "/tests/fixtures/model/rope/model.safetensors");
  HfWeights w(kFixtures + "rope-bin");
  EXPECT_EQ(w.config()["hidden_size"], 48);
  size_t inv_freq = 0;
  for (const auto& name : w.names()) inv_freq += is_ignored_hf_buffer(name);
  EXPECT_EQ(inv_freq, 2u);
  EXPECT_EQ(w.names().size(), st.names().size() + inv_freq);
  std::vector<ParamRef> wanted;
  std::vector<std::vector<float>> loaded;
  loaded.reserve(st.names().size());
  for (const auto& name : st.names()) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(w.has(name));
    ASSERT_EQ(w.shape(name), st.shape(name));
    ASSERT_EQ(w.dtype(name), DType::F32);
    Tensor a = w.file_of(name).tensor(name), b = st.tensor(name);
    ASSERT_EQ(a.nbytes(), b.nbytes());
    EXPECT_EQ(std::memcmp(a.data, b.data, a.nbytes()), 0);
    loaded.emplace_back(size_t(st.shape(name).numel()), -1.f);
    wanted.push_back({name, st.shape(name), loaded.back().data()});
  }
  load_named(w, wanted);  // every tensor mapped; inv_freq buffers skipped
  for (size_t i = 0; i < wanted.size(); ++i) {
    std::vector<float> expect(loaded[i].size());
    st.read_f32(wanted[i].name, expect.data(), int64_t(expect.size()));
    EXPECT_EQ(std::memcmp(expect.data(), loaded[i].data(), expect.size() * 4), 0) << wanted[i].name;
  }
}

// The same model as two BF16 shards (how Baichuan-13B ships): each weight equals the
// round-to-nearest-even bf16 of the original, exactly.
TEST(TorchBin, RopeModelShardedBf16MatchesRoundedOriginal) {
  SafetensorsFile st(std::string(CS_SOURCE_DIR) + "/tests/fixtures/model/rope/model.safetensors");
  HfWeights w(kFixtures + "rope-bin-sharded");
  ASSERT_EQ(w.names().size(), st.names().size());
  EXPECT_NE(&w.file_of(st.names().front()), &w.file_of(st.names().back()));
  for (const auto& name : st.names()) {
    SCOPED_TRACE(name);
    ASSERT_EQ(w.dtype(name), DType::BF16);
    ASSERT_EQ(w.shape(name), st.shape(name));
    std::vector<float> orig(size_t(st.shape(name).numel())), got(orig.size());
    st.read_f32(name, orig.data(), int64_t(orig.size()));
    w.read_f32(name, got.data(), int64_t(got.size()));
    for (size_t i = 0; i < orig.size(); ++i)
      ASSERT_EQ(got[i], bf16_to_f32(f32_to_bf16(orig[i]))) << i;
  }
}

// A ZIP64 archive over 4 GiB (mostly a hole): a 4 GiB + 8 byte F32 storage whose last two
// elements are a tensor at storage offset 2^30, and an entry whose local header is past 4 GiB.
TEST(TorchBin, Zip64ArchiveOver4GiB) {
  using namespace testzip;
  const int64_t numel = (int64_t(1) << 30) + 2;
  std::string pickle = state_dict_pickle({{"tail", {2}, {1}, "FloatStorage", "0", numel, numel - 2},
                                          {"all", {numel}, {1}, "FloatStorage", "0", numel, 0}});
  std::vector<ZipEntrySpec> entries = {
      {"big/data.pkl", pickle}, {"big/data/0", "", uint64_t(numel) * 4}, {"big/version", "3\n"}};
  ZipImage img = zip_image(entries, /*zip64=*/true);
  const uint64_t data0 = pickle.size() + 30 + entries[0].name.size() + 30 + entries[1].name.size();
  std::string last(8, '\0');
  const float vals[2] = {1.5f, -2.f};
  std::memcpy(last.data(), vals, 8);
  img.chunks.push_back({data0 + uint64_t(numel - 2) * 4, last});
  ASSERT_GT(img.size, uint64_t(1) << 32);

  std::string path = (fs::path(testing::TempDir()) / "cs_torch_bin_zip64.bin").string();
  if (!write_image(path, img)) {
    fs::remove(path);
    GTEST_SKIP() << "cannot write a sparse 4 GiB file in " << testing::TempDir();
  }
  {
    ZipReader z(path);
    EXPECT_EQ(z.entries().size(), 3u);
    EXPECT_EQ(z.data("big/data/0").second, uint64_t(numel) * 4);
    auto [v, n] = z.data("big/version");  // local header at > 4 GiB
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(v), n), "3\n");
    TorchBinFile f(path);
    std::vector<float> tail(2), rows(2);
    f.read_f32("tail", tail.data(), 2);
    EXPECT_EQ(tail, (std::vector<float>{1.5f, -2.f}));
    EXPECT_EQ(f.shape("all"), Shape({numel}));
    f.read_f32_rows("all", numel - 2, numel, rows.data());
    EXPECT_EQ(rows, tail);
  }
  fs::remove(path);
}

TEST(TorchBin, SmallZip64AndPlainArchivesReadAlike) {
  using namespace testzip;
  for (bool zip64 : {false, true}) {
    SCOPED_TRACE(zip64);
    std::string pickle = state_dict_pickle({{"w", {2, 2}, {2, 1}, "HalfStorage", "7", 4, 0}});
    std::string half(8, '\0');
    const uint16_t h[4] = {f32_to_f16(1.f), f32_to_f16(2.f), f32_to_f16(-3.f), f32_to_f16(0.5f)};
    std::memcpy(half.data(), h, 8);
    std::string path = (fs::path(testing::TempDir()) / "cs_torch_bin_small.bin").string();
    ASSERT_TRUE(
        write_image(path, zip_image(torch_entries("any_name", pickle, {{"7", half}}), zip64)));
    TorchBinFile f(path);
    EXPECT_EQ(f.prefix(), "any_name");
    EXPECT_EQ(read_all(f, "w"), (std::vector<float>{1.f, 2.f, -3.f, 0.5f}));
  }
}

}  // namespace
}  // namespace cs
