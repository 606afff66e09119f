// Bad Parquet files: truncated at many offsets, bad magic, bad footer lengths, every byte of small
// files flipped (footer and page headers included), and features the reader refuses on purpose
// (LZ4, BROTLI, DELTA_* encodings, nested columns). Each must be a cs::Error naming the file
// (and the column where one is to blame); nothing may crash, hang or throw anything else.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <filesystem>
#include <cstring>
#include <fstream>

#include "core/error.h"
#include "data/parquet/parquet_reader.h"

namespace cs {
namespace {

using testing::HasSubstr;
using Bytes = std::vector<uint8_t>;

const std::string kDir = std::string(CS_SOURCE_DIR) + "/tests/fixtures/parquet/";

Bytes read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(f), {});
}

// A scratch path, in RAM (/dev/shm) where there is one: the flip test writes thousands of files.
std::string temp_path(const std::string& name) {
  std::filesystem::path base = std::filesystem::is_directory("/dev/shm")
                                   ? std::filesystem::path("/dev/shm")
                                   : std::filesystem::temp_directory_path();
  auto dir = base / ("cs_parquet_errors_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

void write_file(const std::string& path, const Bytes& b) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

// Opens PATH and reads every cell. Returns "" when it reads, the cs::Error's message otherwise;
// any other exception fails the test.
std::string read_all(const std::string& path) {
  try {
    ParquetReader r(path);
    int64_t rows = 0;
    r.for_each_row({}, [&](const ParquetRow& row) {
      for (size_t c = 0; c < row.size(); ++c) {
        ParquetType t = r.columns()[c].type;
        if (t == ParquetType::kByteArray) row.string(c);
        else if (t == ParquetType::kFloat || t == ParquetType::kDouble) row.float64(c);
        else row.int64(c);
      }
      ++rows;
    });
    EXPECT_EQ(rows, r.num_rows()) << path;
    return "";
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << path << ": not a cs::Error: " << e.what();
    return e.what();
  }
}

// Writes B to a temporary file and expects a cs::Error naming it with every one of WORDS.
void expect_error(const std::string& test, const Bytes& b, const std::vector<std::string>& words) {
  const std::string path = temp_path(test + ".parquet");
  write_file(path, b);
  std::string msg = read_all(path);
  ASSERT_FALSE(msg.empty()) << test << ": read without error";
  EXPECT_THAT(msg, HasSubstr("[parquet] " + path + ": ")) << test;
  for (const std::string& w : words) EXPECT_THAT(msg, HasSubstr(w)) << test;
}

Bytes patched(Bytes b, size_t at, const Bytes& with) {
  std::copy(with.begin(), with.end(), b.begin() + long(at));
  return b;
}

uint32_t footer_length(const Bytes& b) {
  uint32_t n;
  std::memcpy(&n, b.data() + b.size() - 8, 4);
  return n;
}

Bytes le32(uint32_t v) { return {uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24)}; }

TEST(ParquetErrors, MissingEmptyAndTooShortFiles) {
  EXPECT_THAT(read_all(kDir + "no_such.parquet"), HasSubstr("no_such.parquet: cannot open"));
  EXPECT_THAT(read_all(kDir), HasSubstr("not a regular file (a directory)"));
  expect_error("empty", {}, {"file too short: got 0 bytes, expected at least 12"});
  expect_error("magic_only", {'P', 'A', 'R', '1', 'P', 'A', 'R', '1'}, {"file too short"});
}

TEST(ParquetErrors, BadMagicAndFooterLength) {
  const Bytes good = read_file(kDir + "snappy_dict_v1.parquet");
  const size_t n = good.size();
  const uint32_t len = footer_length(good);
  expect_error("head_magic", patched(good, 0, {'P', 'A', 'R', '2'}), {"does not start with \"PAR1\""});
  expect_error("tail_magic", patched(good, n - 4, {'P', 'A', 'R', '0'}), {"does not end with \"PAR1\""});
  expect_error("encrypted", patched(good, n - 4, {'P', 'A', 'R', 'E'}), {"encrypted footer"});
  expect_error("footer_past_file", patched(good, n - 8, le32(uint32_t(n))),
               {"footer length got " + std::to_string(n) + " bytes, expected at most " +
                std::to_string(n - 12)});
  expect_error("footer_huge", patched(good, n - 8, le32(0xffffffffu)), {"footer length got 4294967295"});
  expect_error("footer_zero", patched(good, n - 8, le32(0)), {"footer (FileMetaData)"});
  expect_error("footer_short", patched(good, n - 8, le32(len - 1)), {"footer (FileMetaData)"});
  expect_error("footer_long", patched(good, n - 8, le32(len + 1)), {"footer (FileMetaData)"});
}

TEST(ParquetErrors, TruncatedAtManyOffsets) {
  const Bytes good = read_file(kDir + "zstd_dict_v2.parquet");
  for (size_t cut = 0; cut < good.size(); cut += 7) {
    Bytes b(good.begin(), good.begin() + long(cut));
    expect_error("cut_" + std::to_string(cut), b, {});
  }
}

TEST(ParquetErrors, PagesCutOutFooterKept) {
  // The data region shrinks but the footer still points into it: the chunks lie past its end.
  const Bytes good = read_file(kDir + "gzip_plain_v2.parquet");
  const size_t tail = footer_length(good) + 8;
  for (size_t keep : {size_t(4), size_t(100), good.size() / 2, good.size() - tail - 1}) {
    Bytes b(good.begin(), good.begin() + long(keep));
    b.insert(b.end(), good.end() - long(tail), good.end());
    expect_error("keep_" + std::to_string(keep), b, {"row group", "column '"});
  }
}

TEST(ParquetErrors, PageHeaderCorruption) {
  // The first page header of the first chunk starts right after the leading PAR1:
  // 0x15 <type> 0x15 <uncompressed size> 0x15 <compressed size> ...
  const Bytes good = read_file(kDir + "none_plain_v1.parquet");
  ASSERT_EQ(good[4], 0x15);
  expect_error("page_type", patched(good, 5, {0x0e}), {"row group 0, column 'id'", "unknown page type 7"});
  expect_error("page_garbage", patched(good, 4, Bytes(12, 0xff)), {"row group 0, column 'id'", "page header"});
  size_t p = 7;
  while (good[p] & 0x80) ++p;  // end of the uncompressed-size varint
  ASSERT_EQ(good[p + 1], 0x15);
  size_t q = p + 2, q_end = q;
  while (good[q_end] & 0x80) ++q_end;
  // Re-encode the compressed size as 8191 (two bytes: fe 7f). The header grows by a byte or so,
  // which only shifts what follows the first page; the footer is found from the file's end.
  Bytes big(good.begin(), good.begin() + long(q));
  big.insert(big.end(), {0xfe, 0x7f});
  big.insert(big.end(), good.begin() + long(q_end) + 1, good.end());
  expect_error("page_past_chunk", big, {"row group 0, column 'id'", "runs past the column chunk's end"});
}

TEST(ParquetErrors, EveryByteFlippedIsReadOrRefused) {
  // Exhaustive single-byte corruption of small files: footer, page headers, levels and values
  // inverted (0xff); in the footer, the top and bottom bits alone too (varint continuation bits,
  // field-type nibbles, small offsets).
  for (const char* name : {"none_plain_v1.parquet", "snappy_dict_v2.parquet", "gzip_dict_v1.parquet"}) {
    const Bytes good = read_file(kDir + name);
    const std::string path = temp_path(std::string("flip_") + name);
    const size_t footer = good.size() - 8 - footer_length(good);
    size_t errors = 0;
    for (size_t i = 0; i < good.size(); ++i) {
      for (uint8_t mask : {uint8_t(0xff), uint8_t(0x80), uint8_t(0x01)}) {
        if (mask != 0xff && i < footer) continue;
        Bytes b = good;
        b[i] ^= mask;
        write_file(path, b);
        std::string msg = read_all(path);
        if (!msg.empty()) {
          ++errors;
          EXPECT_THAT(msg, HasSubstr("[parquet] " + path + ": ")) << "byte " << i;
        }
      }
    }
    EXPECT_GT(errors, good.size() / 2) << name;  // most flips must be caught
  }
}

TEST(ParquetErrors, UnsupportedFeaturesNameFileColumnAndFeature) {
  std::ifstream f(kDir + "expected.json");
  const nlohmann::json refused = nlohmann::json::parse(f)["refused"];
  ASSERT_GE(refused.size(), 6u);
  for (const auto& [name, spec] : refused.items()) {
    SCOPED_TRACE(name);
    const std::string path = kDir + name;
    std::string msg = read_all(path);
    ASSERT_FALSE(msg.empty());
    EXPECT_THAT(msg, HasSubstr("[parquet] " + path + ": "));
    EXPECT_THAT(msg, HasSubstr("not supported"));
    for (const auto& w : spec["words"]) EXPECT_THAT(msg, HasSubstr(w.get<std::string>()));
    if (!spec["others_readable"].get<bool>()) continue;
    // A column with a refused encoding does not stop the others from being read.
    ParquetReader r(path);
    const std::string other = spec["column"] == "id" ? "s" : "id";
    int64_t rows = 0;
    r.for_each_row({other}, [&](const ParquetRow&) { ++rows; });
    EXPECT_EQ(rows, r.num_rows());
  }
}

}  // namespace
}  // namespace cs
