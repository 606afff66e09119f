// Corrupt, truncated and mismatched MMIDIDX files: each must throw cs::Error naming the file
// (.idx or .bin) and what is wrong, with a hint to rebuild. Out-of-range reads are bugs (CS_CHECK).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <functional>

#include "data/indexed_dataset.h"
#include "data/mmidx_test_util.h"

namespace cs {
namespace {

using testing::HasSubstr;
using namespace cs::test;

// A valid U16 dataset: sequences of 4 and 2 tokens in documents [0, 1) and [1, 2).
Bytes good_idx() { return spec_idx(8, {4, 2}, {0, 1, 2}, 2); }
Bytes good_bin() { return typed_bytes<uint16_t>({1, 2, 3, 4, 5, 6}); }

struct BadCase {
  const char* test;
  Bytes idx, bin;
  const char* file;  // ".idx" or ".bin": the file the message must name
  std::vector<std::string> expect;
};

Bytes patched(Bytes b, size_t at, const Bytes& with) {
  std::memcpy(b.data() + at, with.data(), with.size());
  return b;
}

Bytes resized(Bytes b, size_t n) {
  b.resize(n, 0);
  return b;
}

TEST(IndexedDatasetErrors, EachBadFileNamesFileAndProblem) {
  const size_t docs_at = 34 + 2 * 4 + 2 * 8;  // first document index
  std::vector<BadCase> cases = {
      {"too_short", resized(good_idx(), 20), good_bin(), ".idx", {"file too short: got 20 bytes"}},
      {"magic", patched(good_idx(), 0, hex("4d 4d 49 44 49 44 58 00 01")), good_bin(), ".idx",
       {"bad magic", "MMIDIDX"}},
      {"lazy_magic", patched(good_idx(), 0, hex("54 4e 54 49 44 58 00 00")), good_bin(), ".idx",
       {"got \"TNTIDX\"", "--dataset-impl mmap"}},
      {"version", patched(good_idx(), 9, {2}), good_bin(), ".idx", {"version got 2, expected 1"}},
      {"code_zero", patched(good_idx(), 17, {0}), good_bin(), ".idx", {"dtype code got 0"}},
      {"code_nine", patched(good_idx(), 17, {9}), good_bin(), ".idx", {"dtype code got 9"}},
      {"truncated_idx", resized(good_idx(), good_idx().size() - 8), good_bin(), ".idx",
       {"file size got 74 bytes, expected 82"}},
      {"extra_bytes", resized(good_idx(), good_idx().size() + 5), good_bin(), ".idx",
       {"file size got 87 bytes, expected 82"}},
      {"huge_count", patched(good_idx(), 18, hex("ff ff ff ff ff ff ff 0f")), good_bin(), ".idx",
       {"more than a file of 82 bytes can hold"}},
      {"no_docs", spec_idx(8, {}, {}, 2), {}, ".idx", {"document index count got 0"}},
      {"docs_not_from_zero", patched(good_idx(), docs_at, {1}), good_bin(), ".idx",
       {"document index 0 got 1"}},
      {"docs_decreasing", spec_idx(8, {4, 2}, {0, 2, 1}, 2), good_bin(), ".idx",
       {"document index 2 got 1, expected a value in [2, 2]"}},
      {"docs_short_of_count", spec_idx(8, {4, 2}, {0, 1}, 2), good_bin(), ".idx",
       {"last document index got 1, expected 2"}},
      {"negative_length", spec_idx(8, {4, -2}, {0, 1, 2}, 2), good_bin(), ".idx",
       {"sequence 1 has negative length -2"}},
      {"bin_truncated", good_idx(), resized(good_bin(), 10), ".bin",
       {"sequence 1 (4 bytes from byte 8)", "beyond the end of the file (10 bytes)"}},
      // Pointers whose end (pointer + bytes) overflows int64: rejected without computing it
      // (undefined behaviour that UBSan stops on); sequence 1's pointer is at 34 + 2 * 4 + 8.
      {"pointer_end_overflows", patched(good_idx(), 50, hex("fe ff ff ff ff ff ff 7f")), good_bin(), ".bin",
       {"sequence 1 (4 bytes from byte 9223372036854775806)", "beyond the end of the file (12 bytes)"}},
      {"pointer_negative", patched(good_idx(), 50, hex("00 00 00 00 00 00 00 80")), good_bin(), ".bin",
       {"sequence 1 (4 bytes from byte -9223372036854775808)"}},
      {"bin_of_other_dtype", spec_idx(4, {4, 2}, {0, 1, 2}, 4), good_bin(), ".bin",
       {"sequence 0", "not the .bin of this .idx"}},
  };
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.test);
    std::string prefix = fresh_prefix(std::string("err_") + c.test);
    write_bytes(prefix + ".idx", c.idx);
    write_bytes(prefix + ".bin", c.bin);
    std::string msg = error_of([&] { IndexedDataset ds(prefix); });
    EXPECT_THAT(msg, HasSubstr("[dataset] " + prefix + c.file + ": "));
    EXPECT_THAT(msg, HasSubstr("Hint: re-run `chuanspeed preprocess`"));
    for (const auto& s : c.expect) EXPECT_THAT(msg, HasSubstr(s));
  }
}

TEST(IndexedDatasetErrors, MissingFiles) {
  std::string prefix = fresh_prefix("missing");
  std::string msg = error_of([&] { IndexedDataset ds(prefix); });
  EXPECT_THAT(msg, HasSubstr("[dataset] " + prefix + ".idx: cannot open"));
  EXPECT_THAT(msg, HasSubstr("without .bin/.idx"));
  write_bytes(prefix + ".idx", good_idx());
  msg = error_of([&] { IndexedDataset ds(prefix); });
  EXPECT_THAT(msg, HasSubstr("[dataset] " + prefix + ".bin: cannot open"));
}

TEST(IndexedDatasetErrors, ValidVariantsStillOpen) {
  // Megatron's multimodal index appends one int8 mode per sequence: accepted, modes ignored.
  std::string prefix = fresh_prefix("multimodal");
  Bytes idx = good_idx();
  idx.push_back(0);
  idx.push_back(1);
  write_bytes(prefix + ".idx", idx);
  write_bytes(prefix + ".bin", good_bin());
  EXPECT_EQ(IndexedDataset(prefix).size(), 2);
  // An empty dataset: no sequences, one document index (the leading 0), an empty .bin.
  prefix = fresh_prefix("empty");
  write_bytes(prefix + ".idx", spec_idx(8, {}, {0}, 2));
  write_bytes(prefix + ".bin", {});
  IndexedDataset ds(prefix);
  EXPECT_EQ(ds.size(), 0);
  EXPECT_EQ(ds.num_docs(), 0);
  // A .bin longer than the index needs is tolerated (Megatron does not check it either).
  prefix = fresh_prefix("long_bin");
  write_bytes(prefix + ".idx", good_idx());
  write_bytes(prefix + ".bin", resized(good_bin(), 100));
  EXPECT_EQ(IndexedDataset(prefix).length(0), 4);
}

// A CS_CHECK, so an InternalError (a bug), never a cs::Error (which would read as bad data).
std::string internal_error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return std::string("cs::Error: ") + e.what();
  } catch (const InternalError& e) {
    return e.what();
  }
  return "no exception";
}

TEST(IndexedDatasetErrors, OutOfRangeReadIsABug) {
  std::string prefix = fresh_prefix("bug");
  write_bytes(prefix + ".idx", good_idx());
  write_bytes(prefix + ".bin", good_bin());
  IndexedDataset ds(prefix);
  int32_t buf[8];
  EXPECT_THAT(internal_error_of([&] { ds.read(2, 0, 1, buf); }), HasSubstr("sequence 2 of 2"));
  EXPECT_THAT(internal_error_of([&] { ds.read(1, 1, 2, buf); }), HasSubstr("tokens [1, 3) of sequence 1"));
}

}  // namespace
}  // namespace cs
