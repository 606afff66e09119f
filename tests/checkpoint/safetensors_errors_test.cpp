// Malformed safetensors files: each must throw cs::Error whose message names the file and, where
// one is involved, the tensor. Files are built byte by byte so every field can be wrong on its own.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "checkpoint/safetensors.h"

namespace cs {
namespace {

namespace fs = std::filesystem;
using testing::HasSubstr;

std::string fresh_dir(const std::string& name) {
  fs::path d = fs::path(testing::TempDir()) / ("cs_safetensors_err_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), long(bytes.size()));
}

// 8-byte little-endian length N, then HEADER, then DATA_BYTES zero bytes.
std::string raw_file(const std::string& header, size_t data_bytes, uint64_t n_override = 0) {
  uint64_t n = n_override ? n_override : header.size();
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = char(n >> (8 * i));
  return out + header + std::string(data_bytes, '\0');
}

// Opens a file holding BYTES and returns the cs::Error message (or "(no error)").
std::string open_error(const std::string& test, const std::string& bytes, std::string* path_out) {
  std::string path = fresh_dir(test) + "/model.safetensors";
  write_bytes(path, bytes);
  *path_out = path;
  try {
    SafetensorsFile::open(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

struct BadCase {
  const char* test;
  std::string bytes;
  std::vector<std::string> expect;  // substrings besides the path
};

TEST(SafetensorsErrors, EachBadFileNamesFileAndProblem) {
  const std::string ok_a = R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  std::vector<BadCase> cases = {
      {"too_short", "abcd", {"file too short", "got 4 bytes"}},
      {"len_beyond_file", raw_file(R"({})", 0, 1000), {"header length got 1000", "at most 2"}},
      {"len_absurd", raw_file(R"({})", 0, uint64_t(1) << 40), {"header length got 1099511627776"}},
      {"not_json", raw_file(R"({"a": )", 0), {"not valid JSON"}},
      {"not_object", raw_file(R"([1, 2])", 0), {"does not start with '{'"}},
      {"empty_header", raw_file("", 0), {"does not start with '{'"}},
      {"truncated_data", raw_file("{" + ok_a + "}", 5), {"'a'", "beyond the end of the file"}},
      {"trailing_bytes", raw_file("{" + ok_a + "}", 12), {"data section got 12 bytes, expected 8"}},
      {"overlap",
       raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12),
       {"'b'", "overlap tensor 'a'"}},
      {"gap",
       raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})", 12),
       {"'b'", "begins at byte 8, expected 4"}},
      {"size_vs_shape", raw_file(R"({"a":{"dtype":"BF16","shape":[3],"data_offsets":[0,8]}})", 8),
       {"'a'", "span 8 bytes, expected 6"}},
      {"five_dims",
       raw_file(R"({"a":{"dtype":"U8","shape":[1,1,1,1,2],"data_offsets":[0,2]}})", 2),
       {"'a'", "5 dims, expected at most 4"}},
      {"unknown_dtype", raw_file(R"({"a":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}})", 1),
       {"'a'", "dtype got F8_E4M3"}},
      {"negative_dim", raw_file(R"({"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}})", 1),
       {"'a'", "shape entry got -1"}},
      {"end_before_begin", raw_file(R"({"a":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}})", 4),
       {"'a'", "end before begin"}},
      {"missing_dtype", raw_file(R"({"a":{"shape":[1],"data_offsets":[0,1]}})", 1),
       {"'a'", "\"dtype\""}},
      {"bad_offsets", raw_file(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0]}})", 1),
       {"'a'", "expected [begin, end]"}},
      {"duplicate_name",
       raw_file(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                R"("a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", 1),
       {"'a' twice"}},
      {"metadata_not_string", raw_file(R"({"__metadata__":{"step":3}})", 0),
       {"__metadata__ entry 'step'", "expected a string"}},
      {"overflow_shape",
       raw_file(R"({"a":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8),
       {"'a'", "overflows"}},
  };
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.test);
    std::string path;
    std::string msg = open_error(c.test, c.bytes, &path);
    EXPECT_THAT(msg, HasSubstr("[safetensors] " + path));
    EXPECT_THAT(msg, HasSubstr("Hint:"));
    for (const auto& s : c.expect) EXPECT_THAT(msg, HasSubstr(s));
  }
}

TEST(SafetensorsErrors, MissingFileAndDirectory) {
  std::string dir = fresh_dir("missing");
  for (const std::string& p : {dir + "/nope.safetensors", dir}) {
    try {
      SafetensorsFile::open(p);
      ADD_FAILURE() << "no error for " << p;
    } catch (const Error& e) {
      EXPECT_THAT(e.what(), HasSubstr("[safetensors] " + p + ": cannot open"));
    }
  }
}

TEST(SafetensorsErrors, TruncatedWrittenFile) {
  std::string path = fresh_dir("truncated") + "/model.safetensors";
  std::vector<float> a(16, 1.f), b(16, 2.f);
  write_safetensors(path, {{"model.embed_tokens.weight", Tensor(a.data(), {4, 4})},
                           {"lm_head.weight", Tensor(b.data(), {4, 4})}});
  fs::resize_file(path, fs::file_size(path) - 10);
  try {
    SafetensorsFile::open(path);
    ADD_FAILURE() << "truncated file opened";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr(path));
    EXPECT_THAT(e.what(), HasSubstr("'lm_head.weight'"));
    EXPECT_THAT(e.what(), HasSubstr("truncated"));
  }
}

TEST(SafetensorsErrors, ValidEdgeCasesStillOpen) {
  std::string path;
  // BOOL reads as U8; zero-size tensors may share an offset; metadata may be empty.
  std::string ok = open_error(
      "edge",
      raw_file(R"({"__metadata__":{},"m":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]},)"
               R"("z1":{"dtype":"F32","shape":[0],"data_offsets":[2,2]},)"
               R"("z2":{"dtype":"F32","shape":[3,0],"data_offsets":[2,2]}}    )", 2),
      &path);
  EXPECT_EQ(ok, "(no error)");
  SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_EQ(f.dtype("m"), DType::U8);
  EXPECT_EQ(f.names(), (std::vector<std::string>{"m", "z1", "z2"}));
}

}  // namespace
}  // namespace cs
