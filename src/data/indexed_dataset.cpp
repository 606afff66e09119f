// MMIDIDX reader: maps PREFIX.idx and PREFIX.bin, checks the header, the array sizes against the
// file length, the document indices, and every sequence's bytes against the .bin size. Arrays are
// read with memcpy: the .idx arrays start at byte 34 and are not aligned for their types.
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "data/indexed_dataset.h"

namespace cs {

static_assert(std::endian::native == std::endian::little, "MMIDIDX is little-endian");

namespace {

constexpr char kMagic[9] = {'M', 'M', 'I', 'D', 'I', 'D', 'X', 0, 0};
constexpr size_t kHeaderBytes = 9 + 8 + 1 + 8 + 8;  // magic, version, dtype code, counts
const char* const kHint = "re-run `chuanspeed preprocess` to rebuild the dataset";
const char* const kOpenHint =
    "--data-path takes the prefix without .bin/.idx; run `chuanspeed preprocess` to make the "
    "dataset";

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

bool dtype_from_code(uint8_t code, DType* t) {
  static const DType table[] = {DType::U8,  DType::I8,  DType::I16, DType::I32,
                                DType::I64, DType::F64, DType::F32, DType::U16};
  if (code < 1 || code > 8) return false;
  *t = table[code - 1];
  return true;
}

}  // namespace

DType best_dtype(int64_t vocab_size) { return vocab_size < 65500 ? DType::U16 : DType::I32; }

uint8_t mmidx_dtype_code(DType t) {
  switch (t) {
    case DType::U8: return 1;
    case DType::I8: return 2;
    case DType::I16: return 3;
    case DType::I32: return 4;
    case DType::I64: return 5;
    case DType::F64: return 6;
    case DType::F32: return 7;
    case DType::U16: return 8;
    default:
      throw Error(std::string("[dataset] token dtype got ") + dtype_name(t) +
                  ", expected one of U8 I8 I16 I32 I64 F64 F32 U16. Hint: use best_dtype(vocab)");
  }
}

void IndexedDataset::fail(const std::string& file, const std::string& what) const {
  throw Error("[dataset] " + file + ": " + what + ". Hint: " + kHint);
}

// A throwing constructor still destroys the members already built: no cleanup needed here.
IndexedDataset::IndexedDataset(const std::string& prefix)
    : prefix_(prefix),
      idx_(MappedFile::open(prefix_ + ".idx", "dataset", kOpenHint)),
      bin_(MappedFile::open(prefix_ + ".bin", "dataset", kOpenHint)) {
  validate();
}

void IndexedDataset::validate() {
  const std::string idx = prefix_ + ".idx", bin = prefix_ + ".bin";
  const size_t size = idx_.size();
  if (size < kHeaderBytes)
    fail(idx, "file too short: got " + std::to_string(size) + " bytes, expected at least " +
                  std::to_string(kHeaderBytes) + " (the MMIDIDX header)");
  if (std::memcmp(idx_.data(), "TNTIDX\0\0", 8) == 0)
    fail(idx, "bad magic: got \"TNTIDX\" (Megatron's old lazy/cached IndexedDataset), expected "
              "\"MMIDIDX\" (the mmap format, --dataset-impl mmap)");
  if (std::memcmp(idx_.data(), kMagic, 9) != 0)
    fail(idx, "bad magic: expected \"MMIDIDX\\x00\\x00\" (Megatron's mmap indexed dataset); "
              "not a Megatron .idx");
  uint64_t version = load<uint64_t>(idx_.data() + 9);
  if (version != 1) fail(idx, "version got " + std::to_string(version) + ", expected 1");
  uint8_t code = idx_.data()[17];
  if (!dtype_from_code(code, &dtype_))
    fail(idx, "dtype code got " + std::to_string(code) + ", expected 1..8");
  uint64_t count = load<uint64_t>(idx_.data() + 18), docs = load<uint64_t>(idx_.data() + 26);
  // Bound the counts by the file size before multiplying, so the size check cannot overflow.
  if (count > size / 12 || docs > size / 8)
    fail(idx, "header counts " + std::to_string(count) + " sequences and " + std::to_string(docs) +
                  " document indices, more than a file of " + std::to_string(size) + " bytes can hold");
  const uint64_t expected = kHeaderBytes + 12 * count + 8 * docs;
  // Megatron's multimodal datasets append one int8 mode per sequence; we ignore those bytes.
  if (size != expected && size != expected + count)
    fail(idx, "file size got " + std::to_string(size) + " bytes, expected " +
                  std::to_string(expected) + " for " + std::to_string(count) + " sequences and " +
                  std::to_string(docs) + " document indices (truncated or corrupt)");
  if (docs < 1) fail(idx, "document index count got 0, expected at least 1 (the leading 0)");
  count_ = int64_t(count);
  lengths_at_ = kHeaderBytes;
  pointers_at_ = lengths_at_ + 4 * count;
  const uint8_t* d = idx_.data() + pointers_at_ + 8 * count;
  doc_index_.resize(docs);
  for (uint64_t i = 0; i < docs; ++i) {
    doc_index_[i] = load<int64_t>(d + 8 * i);
    int64_t lo = i ? doc_index_[i - 1] : 0;
    if ((i == 0 && doc_index_[0] != 0) || doc_index_[i] < lo || doc_index_[i] > count_)
      fail(idx, "document index " + std::to_string(i) + " got " + std::to_string(doc_index_[i]) +
                    ", expected a value in [" + std::to_string(lo) + ", " +
                    std::to_string(i ? count_ : 0) + "] (non-decreasing, starting at 0)");
  }
  if (doc_index_.back() != count_)
    fail(idx, "last document index got " + std::to_string(doc_index_.back()) + ", expected " +
                  std::to_string(count_) + " (the sequence count)");
  const int64_t item = int64_t(dtype_size(dtype_)), bin_size = int64_t(bin_.size());
  for (int64_t i = 0; i < count_; ++i) {
    int64_t len = length(i), ptr = pointer(i);
    if (len < 0) fail(idx, "sequence " + std::to_string(i) + " has negative length " + std::to_string(len));
    // len * item < 2^34: no overflow; ptr + len * item could overflow for a ptr from the file, so
    // the end is never computed.
    if (ptr < 0 || ptr > bin_size || len * item > bin_size - ptr)
      fail(bin, "sequence " + std::to_string(i) + " (" + std::to_string(len * item) + " bytes from byte " +
                    std::to_string(ptr) + ") lies beyond the end of the file (" + std::to_string(bin_size) +
                    " bytes): truncated, or not the .bin of this .idx");
  }
}

int32_t IndexedDataset::length(int64_t i) const {
  CS_CHECK(i >= 0 && i < count_) << "sequence " << i << " of " << count_;
  return load<int32_t>(idx_.data() + lengths_at_ + 4 * size_t(i));
}

int64_t IndexedDataset::pointer(int64_t i) const {
  CS_CHECK(i >= 0 && i < count_) << "sequence " << i << " of " << count_;
  return load<int64_t>(idx_.data() + pointers_at_ + 8 * size_t(i));
}

namespace {
template <typename T>
void copy_ints(const uint8_t* p, int64_t n, int32_t* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = int32_t(load<T>(p + sizeof(T) * i));
}

// I64 and float data: each value must be an integer that fits int32. Returns the first bad index.
template <typename T>
int64_t copy_checked(const uint8_t* p, int64_t n, int32_t* dst) {
  for (int64_t i = 0; i < n; ++i) {
    T v = load<T>(p + sizeof(T) * i);
    bool ok;
    if constexpr (std::is_integral_v<T>) {
      ok = v >= std::numeric_limits<int32_t>::min() && v <= std::numeric_limits<int32_t>::max();
    } else {  // every int32 is exact in double; NaN fails both comparisons
      double d = double(v);
      ok = d >= -2147483648.0 && d < 2147483648.0 && std::trunc(d) == d;
    }
    if (!ok) return i;
    dst[i] = int32_t(v);
  }
  return -1;
}
}  // namespace

void IndexedDataset::read(int64_t seq, int64_t offset, int64_t count, int32_t* dst) const {
  const int64_t len = length(seq);
  CS_CHECK(offset >= 0 && count >= 0 && offset + count <= len)
      << "tokens [" << offset << ", " << offset + count << ") of sequence " << seq << " (length "
      << len << ")";
  const uint8_t* p = bin_.data() + pointer(seq) + offset * int64_t(dtype_size(dtype_));
  int64_t bad = -1;
  switch (dtype_) {
    case DType::U8: copy_ints<uint8_t>(p, count, dst); break;
    case DType::I8: copy_ints<int8_t>(p, count, dst); break;
    case DType::I16: copy_ints<int16_t>(p, count, dst); break;
    case DType::U16: copy_ints<uint16_t>(p, count, dst); break;
    case DType::I32: copy_ints<int32_t>(p, count, dst); break;
    case DType::I64: bad = copy_checked<int64_t>(p, count, dst); break;
    case DType::F32: bad = copy_checked<float>(p, count, dst); break;
    case DType::F64: bad = copy_checked<double>(p, count, dst); break;
    default: CS_CHECK(false) << "dtype " << dtype_name(dtype_);
  }
  if (bad >= 0)
    fail(prefix_ + ".bin", "sequence " + std::to_string(seq) + " token " +
                               std::to_string(offset + bad) + " (" + dtype_name(dtype_) +
                               ") is not an integer token id that fits int32");
}

IndexedDataset::IndexedDataset(IndexedDataset&& o) noexcept { *this = std::move(o); }

IndexedDataset& IndexedDataset::operator=(IndexedDataset&& o) noexcept {
  if (this != &o) {
    prefix_ = std::move(o.prefix_);
    idx_ = std::move(o.idx_);
    bin_ = std::move(o.bin_);
    dtype_ = o.dtype_;
    count_ = o.count_;
    lengths_at_ = o.lengths_at_;
    pointers_at_ = o.pointers_at_;
    doc_index_ = std::move(o.doc_index_);
    o.count_ = 0;
  }
  return *this;
}

}  // namespace cs
