// MMIDIDX writer, following Megatron's IndexedDatasetBuilder and _IndexWriter byte for byte:
// tokens go to PREFIX.bin.tmp as they arrive; finalize() writes PREFIX.idx.tmp (header, int32
// lengths, int64 byte pointers, int64 document indices), fsyncs both and renames them into place.
// Both files are core AtomicFiles: a writer destroyed before finalize() leaves no .tmp behind.
#include <cstring>
#include <limits>
#include <type_traits>

#include "data/indexed_dataset.h"

namespace cs {

namespace {

constexpr char kMagic[9] = {'M', 'M', 'I', 'D', 'I', 'D', 'X', 0, 0};

// Appends N values of type T converted from int32 IDS to OUT; returns the index of the first id
// outside T's range, or -1.
template <typename T>
int64_t append_as(const int32_t* ids, int64_t n, std::vector<uint8_t>& out) {
  size_t at = out.size();
  out.resize(at + sizeof(T) * size_t(n));
  for (int64_t i = 0; i < n; ++i) {
    if constexpr (std::is_integral_v<T> && sizeof(T) < 4) {
      if (ids[i] < std::numeric_limits<T>::min() || ids[i] > std::numeric_limits<T>::max()) return i;
    }
    if constexpr (std::is_same_v<T, float>) {  // floats hold integers exactly up to 2^24
      if (ids[i] > (1 << 24) || ids[i] < -(1 << 24)) return i;
    }
    T v = T(ids[i]);
    std::memcpy(out.data() + at + sizeof(T) * size_t(i), &v, sizeof(T));
  }
  return -1;
}

template <typename T>
void put(std::vector<uint8_t>& out, T v) {
  const uint8_t* p = reinterpret_cast<const uint8_t*>(&v);
  out.insert(out.end(), p, p + sizeof(T));
}

// DTYPE, after checking that it has a Megatron code (throws otherwise).
DType checked_dtype(DType dtype) {
  mmidx_dtype_code(dtype);
  return dtype;
}

}  // namespace

void IndexedDatasetWriter::fail(const std::string& what) const {
  throw Error("[dataset] " + prefix_ + ": " + what);
}

IndexedDatasetWriter::IndexedDatasetWriter(const std::string& prefix, DType dtype)
    : prefix_(prefix), dtype_(checked_dtype(dtype)), bin_(prefix_ + ".bin", "dataset") {}

void IndexedDatasetWriter::add_item(const int32_t* ids, int64_t n) {
  CS_CHECK(!finalized_) << "add_item after finalize on " << prefix_;
  CS_CHECK(n >= 0 && (ids || n == 0)) << "add_item(" << n << ") on " << prefix_;
  if (n > std::numeric_limits<int32_t>::max())
    fail("sequence of " + std::to_string(n) + " tokens, expected at most 2^31-1 (lengths are int32)"
         ". Hint: split the document into shorter items");
  scratch_.clear();
  int64_t bad = -1;
  switch (dtype_) {
    case DType::U8: bad = append_as<uint8_t>(ids, n, scratch_); break;
    case DType::I8: bad = append_as<int8_t>(ids, n, scratch_); break;
    case DType::I16: bad = append_as<int16_t>(ids, n, scratch_); break;
    case DType::U16: bad = append_as<uint16_t>(ids, n, scratch_); break;
    case DType::I32: bad = append_as<int32_t>(ids, n, scratch_); break;
    case DType::I64: bad = append_as<int64_t>(ids, n, scratch_); break;
    case DType::F32: bad = append_as<float>(ids, n, scratch_); break;
    case DType::F64: bad = append_as<double>(ids, n, scratch_); break;
    default: CS_CHECK(false) << dtype_name(dtype_);
  }
  if (bad >= 0)
    fail("token id " + std::to_string(ids[bad]) + " does not fit the dataset dtype " +
         dtype_name(dtype_) + ". Hint: vocabularies of 65500 or more need I32 (best_dtype)");
  bin_.write(scratch_.data(), scratch_.size());
  lengths_.push_back(int32_t(n));
}

void IndexedDatasetWriter::end_document() {
  CS_CHECK(!finalized_) << "end_document after finalize on " << prefix_;
  doc_index_.push_back(int64_t(lengths_.size()));
}

void IndexedDatasetWriter::finalize() {
  CS_CHECK(!finalized_) << "finalize twice on " << prefix_;
  // Megatron's reader requires the last document index to equal the sequence count.
  if (doc_index_.back() != int64_t(lengths_.size())) end_document();

  std::vector<uint8_t> idx(kMagic, kMagic + 9);
  put<uint64_t>(idx, 1);
  put<uint8_t>(idx, mmidx_dtype_code(dtype_));
  put<uint64_t>(idx, lengths_.size());
  put<uint64_t>(idx, doc_index_.size());
  for (int32_t len : lengths_) put<int32_t>(idx, len);
  int64_t ptr = 0, item = int64_t(dtype_size(dtype_));
  for (int32_t len : lengths_) {
    put<int64_t>(idx, ptr);
    ptr += int64_t(len) * item;
  }
  for (int64_t d : doc_index_) put<int64_t>(idx, d);

  AtomicFile idx_file(prefix_ + ".idx", "dataset");
  idx_file.write(idx.data(), idx.size());
  // Both durable before either is visible; then .bin first, so a visible .idx always has its
  // complete .bin beside it.
  idx_file.sync();
  bin_.sync();
  bin_.commit();
  idx_file.commit();
  finalized_ = true;
}

}  // namespace cs
