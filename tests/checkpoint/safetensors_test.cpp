// Safetensors reader/writer: round trips over every dtype, the on-disk layout (8-byte padded
// header, contiguous data), float conversions, row slices, and the writer's atomic replace.
// Malformed files are covered in safetensors_errors_test.cpp.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>

#include "checkpoint/safetensors.h"
#include "core/half.h"

namespace cs {
namespace {

namespace fs = std::filesystem;
using testing::HasSubstr;

std::string fresh_dir(const std::string& name) {
  fs::path d = fs::path(testing::TempDir()) / ("cs_safetensors_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

std::vector<uint8_t> file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Byte patterns for one tensor per dtype: element i of each is i * 7 + 1 mod 256 byte-wise.
struct Sample {
  std::string name;
  DType dtype;
  Shape shape;
  std::vector<uint8_t> bytes;
};

std::vector<Sample> samples() {
  std::vector<Sample> s = {
      {"f32", DType::F32, {2, 3}, {}},     {"f64", DType::F64, {3}, {}},
      {"bf16", DType::BF16, {5}, {}},      {"f16", DType::F16, {1, 2, 3}, {}},
      {"i64", DType::I64, {2}, {}},        {"i32", DType::I32, {1, 1, 1, 4}, {}},
      {"i16", DType::I16, {3}, {}},        {"u16", DType::U16, {2, 2}, {}},
      {"i8", DType::I8, {7}, {}},          {"u8", DType::U8, {3}, {}},
      {"scalar", DType::F32, Shape{}, {}}, {"empty", DType::F32, {0, 3}, {}},
  };
  for (auto& x : s) {
    x.bytes.resize(size_t(x.shape.numel()) * dtype_size(x.dtype));
    for (size_t i = 0; i < x.bytes.size(); ++i) x.bytes[i] = uint8_t(i * 7 + 1);
  }
  return s;
}

TEST(Safetensors, RoundTripEveryDtype) {
  std::string path = fresh_dir("roundtrip") + "/a.safetensors";
  auto s = samples();
  std::vector<NamedTensor> ts;
  for (auto& x : s) ts.push_back({x.name, Tensor(x.bytes.data(), x.shape, x.dtype)});
  std::map<std::string, std::string> meta = {{"format", "pt"}, {"iteration", "12"}};
  write_safetensors(path, ts, meta);

  SafetensorsFile f = SafetensorsFile::open(path);
  ASSERT_EQ(f.names().size(), s.size());
  EXPECT_EQ(f.metadata(), meta);
  EXPECT_EQ(f.path(), path);
  for (size_t i = 0; i < s.size(); ++i) {
    SCOPED_TRACE(s[i].name);
    EXPECT_EQ(f.names()[i], s[i].name);  // header order is the given order
    EXPECT_TRUE(f.has(s[i].name));
    Tensor t = f.tensor(s[i].name);
    EXPECT_EQ(t.dtype, s[i].dtype);
    EXPECT_EQ(t.shape, s[i].shape);
    EXPECT_EQ(f.shape(s[i].name), s[i].shape);
    EXPECT_EQ(f.dtype(s[i].name), s[i].dtype);
    ASSERT_EQ(t.nbytes(), s[i].bytes.size());
    if (t.nbytes()) {
      EXPECT_EQ(0, std::memcmp(t.data, s[i].bytes.data(), t.nbytes()));
    }
  }
  EXPECT_FALSE(f.has("nope"));
}

TEST(Safetensors, LayoutIsPaddedHeaderThenContiguousData) {
  std::string path = fresh_dir("layout") + "/a.safetensors";
  std::vector<uint8_t> a(3, 0xaa);
  std::vector<float> b = {1.f, 2.f};
  write_safetensors(path, {{"odd", Tensor(a.data(), {3}, DType::U8)}, {"b", Tensor(b.data(), {2})}},
                    {{"k", "v"}});
  std::vector<uint8_t> raw = file_bytes(path);
  uint64_t n = 0;
  std::memcpy(&n, raw.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(raw[8], '{');
  ASSERT_EQ(raw.size(), 8 + n + 3 + 8);
  std::string header(raw.begin() + 8, raw.begin() + 8 + long(n));
  auto j = nlohmann::json::parse(header);  // trailing spaces are valid JSON whitespace
  EXPECT_EQ(j["odd"]["data_offsets"], nlohmann::json({0, 3}));
  EXPECT_EQ(j["odd"]["dtype"], "U8");
  EXPECT_EQ(j["b"]["data_offsets"], nlohmann::json({3, 11}));
  EXPECT_EQ(j["b"]["shape"], nlohmann::json({2}));
  EXPECT_EQ(j["__metadata__"]["k"], "v");
  EXPECT_EQ(0, std::memcmp(raw.data() + 8 + n + 3, b.data(), 8));
  // The F32 tensor sits at an odd offset: read_f32 must still return it exactly.
  SafetensorsFile f = SafetensorsFile::open(path);
  float got[2];
  f.read_f32("b", got, 2);
  EXPECT_EQ(got[0], 1.f);
  EXPECT_EQ(got[1], 2.f);
}

TEST(Safetensors, EmptyFileHasNoTensors) {
  std::string path = fresh_dir("empty") + "/a.safetensors";
  write_safetensors(path, {});
  SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_TRUE(f.names().empty());
  EXPECT_TRUE(f.metadata().empty());
}

TEST(Safetensors, OverwriteIsAtomicAndLeavesNoTmp) {
  std::string dir = fresh_dir("overwrite"), path = dir + "/a.safetensors";
  std::vector<float> x = {1, 2, 3}, y = {4, 5};
  write_safetensors(path, {{"x", Tensor(x.data(), {3})}});
  write_safetensors(path, {{"y", Tensor(y.data(), {2})}});
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_EQ(f.names(), std::vector<std::string>{"y"});
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
}

TEST(Safetensors, ReadF32ConvertsHalfAndDouble) {
  std::string path = fresh_dir("convert") + "/a.safetensors";
  // bf16: 1, -2, 0.33203125, +inf, -0.   f16: 1, -2, 0.333251953125, 2^-24 (subnormal), +inf
  std::vector<uint16_t> bf = {0x3f80, 0xc000, 0x3eaa, 0x7f80, 0x8000};
  std::vector<uint16_t> hf = {0x3c00, 0xc000, 0x3555, 0x0001, 0x7c00};
  std::vector<double> db = {0.1, -1e30, 65504.0};
  std::vector<float> fl = {3.5f, -0.f, std::numeric_limits<float>::denorm_min()};
  write_safetensors(path, {{"bf", Tensor(bf.data(), {5}, DType::BF16)},
                           {"hf", Tensor(hf.data(), {5}, DType::F16)},
                           {"db", Tensor(db.data(), {3}, DType::F64)},
                           {"fl", Tensor(fl.data(), {3}, DType::F32)}});
  SafetensorsFile f = SafetensorsFile::open(path);
  std::vector<float> out(5);
  f.read_f32("bf", out.data(), 5);
  EXPECT_EQ(out, (std::vector<float>{1.f, -2.f, 0.33203125f, INFINITY, -0.f}));
  EXPECT_TRUE(std::signbit(out[4]));
  f.read_f32("hf", out.data(), 5);
  EXPECT_EQ(out, (std::vector<float>{1.f, -2.f, 0.333251953125f, std::ldexp(1.f, -24), INFINITY}));
  out.resize(3);
  f.read_f32("db", out.data(), 3);
  EXPECT_EQ(out, (std::vector<float>{float(0.1), float(-1e30), 65504.f}));
  f.read_f32("fl", out.data(), 3);
  EXPECT_EQ(0, std::memcmp(out.data(), fl.data(), 12));
}

TEST(Safetensors, LargeConversionsCoverEveryElement) {
  // Above the parallel threshold: every element must be converted exactly once, in place.
  std::string path = fresh_dir("large") + "/a.safetensors";
  const int64_t n = (int64_t(1) << 19) + 7;
  std::vector<uint16_t> bf(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) bf[size_t(i)] = f32_to_bf16(float(i % 251) - 125.f);
  write_safetensors(path, {{"big", Tensor(bf.data(), {n}, DType::BF16)}});
  std::vector<float> out(size_t(n), NAN);
  SafetensorsFile(path).read_f32("big", out.data(), n);
  for (int64_t i = 0; i < n; ++i)
    if (out[size_t(i)] != float(i % 251) - 125.f) FAIL() << "element " << i << " = " << out[size_t(i)];
}

TEST(Safetensors, ReadF32RowsReturnsASlice) {
  std::string path = fresh_dir("rows") + "/a.safetensors";
  std::vector<float> w(4 * 3);
  std::iota(w.begin(), w.end(), 0.f);
  std::vector<uint16_t> wb(w.size());
  for (size_t i = 0; i < w.size(); ++i) wb[i] = f32_to_bf16(w[i]);
  write_safetensors(path, {{"w", Tensor(w.data(), {4, 3})}, {"wb", Tensor(wb.data(), {4, 3}, DType::BF16)}});
  SafetensorsFile f = SafetensorsFile::open(path);
  for (const char* name : {"w", "wb"}) {
    std::vector<float> got(6);
    f.read_f32_rows(name, 1, 3, got.data());
    EXPECT_EQ(got, (std::vector<float>{3, 4, 5, 6, 7, 8})) << name;
  }
  std::vector<float> none(1, -1.f);
  f.read_f32_rows("w", 4, 4, none.data());  // an empty slice at the end is fine
  EXPECT_EQ(none[0], -1.f);
  std::string msg = error_of([&] { f.read_f32_rows("w", 2, 5, none.data()); });
  EXPECT_THAT(msg, HasSubstr("'w'"));
  EXPECT_THAT(msg, HasSubstr("rows [2, 5)"));
  EXPECT_THAT(msg, HasSubstr(path));
}

TEST(Safetensors, ReadF32RejectsIntegersAndWrongCounts) {
  std::string path = fresh_dir("ints") + "/a.safetensors";
  std::vector<int32_t> ids = {1, 2};
  std::vector<float> x = {1, 2, 3};
  write_safetensors(path, {{"ids", Tensor(ids.data(), {2}, DType::I32)}, {"x", Tensor(x.data(), {3})}});
  SafetensorsFile f = SafetensorsFile::open(path);
  float out[4];
  std::string msg = error_of([&] { f.read_f32("ids", out, 2); });
  EXPECT_THAT(msg, HasSubstr("'ids'"));
  EXPECT_THAT(msg, HasSubstr("I32"));
  msg = error_of([&] { f.read_f32("x", out, 4); });
  EXPECT_THAT(msg, HasSubstr("'x'"));
  EXPECT_THAT(msg, HasSubstr("(3 elements), got a destination of 4"));
}

TEST(Safetensors, MissingTensorIsAnErrorNamingIt) {
  std::string path = fresh_dir("missing") + "/a.safetensors";
  std::vector<float> x = {1};
  write_safetensors(path, {{"x", Tensor(x.data(), {1})}});
  SafetensorsFile f = SafetensorsFile::open(path);
  for (auto& call : std::vector<std::function<void()>>{
           [&] { f.tensor("model.norm.weight"); }, [&] { f.shape("model.norm.weight"); },
           [&] { float y; f.read_f32("model.norm.weight", &y, 1); }}) {
    std::string msg = error_of(call);
    EXPECT_THAT(msg, HasSubstr("'model.norm.weight'"));
    EXPECT_THAT(msg, HasSubstr(path));
  }
}

TEST(Safetensors, MovedFileStaysReadable) {
  std::string path = fresh_dir("move") + "/a.safetensors";
  std::vector<float> x = {7, 8};
  write_safetensors(path, {{"x", Tensor(x.data(), {2})}});
  SafetensorsFile a = SafetensorsFile::open(path);
  SafetensorsFile b = std::move(a);
  std::vector<SafetensorsFile> v;
  v.push_back(std::move(b));
  v.push_back(SafetensorsFile::open(path));  // reallocation moves v[0]
  float got[2];
  v[0].read_f32("x", got, 2);
  EXPECT_EQ(got[1], 8.f);
  b = std::move(v[1]);
  b.read_f32("x", got, 2);
  EXPECT_EQ(got[0], 7.f);
}

TEST(Safetensors, WriterRejectsBadNamesAndUnwritablePaths) {
  std::string dir = fresh_dir("writer");
  std::vector<float> x = {1};
  Tensor t(x.data(), {1});
  std::string msg = error_of([&] { write_safetensors(dir + "/a.safetensors", {{"x", t}, {"x", t}}); });
  EXPECT_THAT(msg, HasSubstr("'x' given twice"));
  msg = error_of([&] { write_safetensors(dir + "/a.safetensors", {{"__metadata__", t}}); });
  EXPECT_THAT(msg, HasSubstr("__metadata__"));
  msg = error_of([&] { write_safetensors(dir + "/no/such/dir/a.safetensors", {{"x", t}}); });
  EXPECT_THAT(msg, HasSubstr(dir + "/no/such/dir/a.safetensors"));
  EXPECT_THAT(msg, HasSubstr("Hint:"));
  EXPECT_FALSE(fs::exists(dir + "/a.safetensors"));
  EXPECT_FALSE(fs::exists(dir + "/a.safetensors.tmp"));
}

}  // namespace
}  // namespace cs
