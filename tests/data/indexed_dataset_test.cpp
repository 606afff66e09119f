// MMIDIDX dataset: golden bytes built by hand from Megatron's _IndexWriter (byte-compatibility),
// every dtype code read from spec-built files, writer round trips and writer errors.
// Corrupt and truncated files are in indexed_dataset_errors_test.cpp.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "data/indexed_dataset.h"
#include "data/mmidx_test_util.h"

namespace cs {
namespace {

namespace fs = std::filesystem;
using testing::HasSubstr;
using namespace cs::test;

// Three sequences in two documents, U16 (code 8): doc 0 = [5, 6, 7], [8]; doc 1 = [9, 10].
// Written out by hand from megatron/core/datasets/indexed_dataset.py (_IndexWriter):
const char* kGoldenIdx =
    "4d 4d 49 44 49 44 58 00 00"  // b"MMIDIDX\x00\x00"
    "01 00 00 00 00 00 00 00"     // version 1 (<Q)
    "08"                          // dtype code 8 = uint16 (<B)
    "03 00 00 00 00 00 00 00"     // sequence count 3 (<Q)
    "03 00 00 00 00 00 00 00"     // document index count 3 = documents + 1 (<Q)
    "03 00 00 00  01 00 00 00  02 00 00 00"  // sequence lengths (int32)
    "00 00 00 00 00 00 00 00  06 00 00 00 00 00 00 00  08 00 00 00 00 00 00 00"  // byte pointers
    "00 00 00 00 00 00 00 00  02 00 00 00 00 00 00 00  03 00 00 00 00 00 00 00";  // doc indices
const char* kGoldenBin = "05 00 06 00 07 00 08 00 09 00 0a 00";

void write_golden_with_writer(const std::string& prefix) {
  IndexedDatasetWriter w(prefix, DType::U16);
  std::vector<int32_t> a = {5, 6, 7}, b = {8}, c = {9, 10};
  w.add_item(a.data(), 3);
  w.add_item(b.data(), 1);
  w.end_document();
  w.add_item(c.data(), 2);
  w.end_document();
  w.finalize();
}

TEST(IndexedDataset, WriterMatchesMegatronGoldenBytes) {
  std::string prefix = fresh_prefix("golden_write");
  write_golden_with_writer(prefix);
  EXPECT_EQ(file_bytes(prefix + ".idx"), hex(kGoldenIdx));
  EXPECT_EQ(file_bytes(prefix + ".bin"), hex(kGoldenBin));
  EXPECT_EQ(hex(kGoldenIdx).size(), 34u + 3 * 4 + 3 * 8 + 3 * 8);
  EXPECT_FALSE(fs::exists(prefix + ".idx.tmp"));
  EXPECT_FALSE(fs::exists(prefix + ".bin.tmp"));
}

TEST(IndexedDataset, ReaderReadsGoldenBytes) {
  std::string prefix = fresh_prefix("golden_read");
  write_bytes(prefix + ".idx", hex(kGoldenIdx));
  write_bytes(prefix + ".bin", hex(kGoldenBin));
  IndexedDataset ds(prefix);
  EXPECT_EQ(ds.prefix(), prefix);
  EXPECT_EQ(ds.size(), 3);
  EXPECT_EQ(ds.num_docs(), 2);
  EXPECT_EQ(ds.doc_index(), (std::vector<int64_t>{0, 2, 3}));
  EXPECT_EQ(ds.dtype(), DType::U16);
  EXPECT_EQ(ds.length(0), 3);
  EXPECT_EQ(ds.length(2), 2);
  EXPECT_EQ(ds.pointer(1), 6);
  std::vector<int32_t> got(3);
  ds.read(0, 0, 3, got.data());
  EXPECT_EQ(got, (std::vector<int32_t>{5, 6, 7}));
  ds.read(2, 1, 1, got.data());
  EXPECT_EQ(got[0], 10);
  ds.read(1, 1, 0, got.data());  // an empty read at the end of a sequence is fine
}

TEST(IndexedDataset, EveryDtypeCodeIsReadable) {
  const std::vector<int32_t> tokens = {0, 1, 100, 127, 42, 7};  // fit every code, incl. int8
  struct Code { uint8_t code; DType dtype; Bytes bin; };
  std::vector<Code> codes = {
      {1, DType::U8, typed_bytes<uint8_t>(tokens)},   {2, DType::I8, typed_bytes<int8_t>(tokens)},
      {3, DType::I16, typed_bytes<int16_t>(tokens)},  {4, DType::I32, typed_bytes<int32_t>(tokens)},
      {5, DType::I64, typed_bytes<int64_t>(tokens)},  {6, DType::F64, typed_bytes<double>(tokens)},
      {7, DType::F32, typed_bytes<float>(tokens)},    {8, DType::U16, typed_bytes<uint16_t>(tokens)}};
  for (const Code& c : codes) {
    SCOPED_TRACE(int(c.code));
    EXPECT_EQ(mmidx_dtype_code(c.dtype), c.code);
    std::string prefix = fresh_prefix("code" + std::to_string(c.code));
    write_bytes(prefix + ".idx", spec_idx(c.code, {4, 2}, {0, 1, 2}, dtype_size(c.dtype)));
    write_bytes(prefix + ".bin", c.bin);
    IndexedDataset ds(prefix);
    EXPECT_EQ(ds.dtype(), c.dtype);
    std::vector<int32_t> got(6);
    ds.read(0, 0, 4, got.data());
    ds.read(1, 0, 2, got.data() + 4);
    EXPECT_EQ(got, tokens);
    // Our writer produces the same bytes for this dtype.
    std::string ours = fresh_prefix("code_ours" + std::to_string(c.code));
    IndexedDatasetWriter w(ours, c.dtype);
    w.add_item(tokens.data(), 4);
    w.end_document();
    w.add_item(tokens.data() + 4, 2);
    w.end_document();
    w.finalize();
    EXPECT_EQ(file_bytes(ours + ".idx"), file_bytes(prefix + ".idx"));
    EXPECT_EQ(file_bytes(ours + ".bin"), c.bin);
  }
}

TEST(IndexedDataset, BestDtypeFollowsMegatron) {
  EXPECT_EQ(best_dtype(64000), DType::U16);  // Baichuan-7B/13B vocabulary
  EXPECT_EQ(best_dtype(65499), DType::U16);
  EXPECT_EQ(best_dtype(65500), DType::I32);
  EXPECT_EQ(best_dtype(125696), DType::I32);  // Baichuan2
  EXPECT_THAT(error_of([] { mmidx_dtype_code(DType::BF16); }), HasSubstr("BF16"));
}

TEST(IndexedDataset, WriterRoundTripWithEmptyDocsAndPendingDocument) {
  std::string prefix = fresh_prefix("roundtrip");
  std::vector<int32_t> big = {0, 65499, 70000, 2147483647};
  {
    IndexedDatasetWriter w(prefix, DType::I32);
    w.add_item(big.data(), 4);
    w.end_document();
    w.end_document();  // an empty document, as Megatron's preprocess can produce
    w.add_item(big.data(), 0);  // an empty sequence
    w.add_item(big.data() + 1, 2);
    EXPECT_FALSE(fs::exists(prefix + ".idx"));  // nothing visible before finalize
    w.finalize();  // closes the pending document
    EXPECT_EQ(w.num_items(), 3);
    EXPECT_EQ(w.num_docs(), 3);
  }
  IndexedDataset ds = IndexedDataset::open(prefix);
  EXPECT_EQ(ds.doc_index(), (std::vector<int64_t>{0, 1, 1, 3}));
  EXPECT_EQ(ds.length(1), 0);
  std::vector<int32_t> got(4);
  ds.read(0, 0, 4, got.data());
  EXPECT_EQ(got, big);
  ds.read(2, 0, 2, got.data());
  EXPECT_EQ(got[1], 70000);
  IndexedDataset moved = std::move(ds);
  moved.read(0, 3, 1, got.data());
  EXPECT_EQ(got[0], 2147483647);
}

TEST(IndexedDataset, WriterErrors) {
  std::string prefix = fresh_prefix("writer_errors");
  {
    IndexedDatasetWriter w(prefix, DType::U16);
    std::vector<int32_t> ids = {1, 65536};
    std::string msg = error_of([&] { w.add_item(ids.data(), 2); });
    EXPECT_THAT(msg, HasSubstr("[dataset] " + prefix));
    EXPECT_THAT(msg, HasSubstr("token id 65536 does not fit the dataset dtype U16"));
    EXPECT_TRUE(fs::exists(prefix + ".bin.tmp"));
  }  // destroyed without finalize: no files left behind
  EXPECT_FALSE(fs::exists(prefix + ".bin.tmp"));
  EXPECT_FALSE(fs::exists(prefix + ".bin"));
  EXPECT_FALSE(fs::exists(prefix + ".idx"));
  std::string msg = error_of([&] { IndexedDatasetWriter w(prefix + "/no/such/dir", DType::U16); });
  EXPECT_THAT(msg, HasSubstr("cannot create " + prefix + "/no/such/dir.bin.tmp"));
  msg = error_of([&] { IndexedDatasetWriter w(prefix, DType::F16); });
  EXPECT_THAT(msg, HasSubstr("token dtype got F16"));
}

TEST(IndexedDataset, ValuesThatDoNotFitInt32AreErrors) {
  std::string prefix = fresh_prefix("too_big");
  write_bytes(prefix + ".idx", spec_idx(5, {2}, {0, 1}, 8));
  write_bytes(prefix + ".bin", typed_bytes<int64_t>({1, 0}));
  Bytes bin = file_bytes(prefix + ".bin");
  int64_t huge = int64_t(1) << 40;
  std::memcpy(bin.data() + 8, &huge, 8);
  write_bytes(prefix + ".bin", bin);
  IndexedDataset ds(prefix);
  int32_t got[2];
  ds.read(0, 0, 1, got);
  EXPECT_EQ(got[0], 1);
  std::string msg = error_of([&] { ds.read(0, 0, 2, got); });
  EXPECT_THAT(msg, HasSubstr(prefix + ".bin"));
  EXPECT_THAT(msg, HasSubstr("sequence 0 token 1"));
}

}  // namespace
}  // namespace cs
