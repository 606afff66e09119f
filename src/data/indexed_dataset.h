// Megatron-LM's mmap indexed dataset (MMIDIDX): PREFIX.idx holds the header, sequence lengths,
// byte pointers and document indices; PREFIX.bin holds the token ids back to back. Byte-compatible
// with megatron/core/datasets/indexed_dataset.py in both directions; layout in docs/formats.md.
// The reader validates the whole index against both file sizes when it opens, so a read never
// leaves the files; the writer writes beside the final names and renames into place.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/file_io.h"
#include "core/tensor.h"

namespace cs {

// Megatron's token dtype rule (DType.optimal_dtype / best_fitting_dtype): U16 when
// vocab_size < 65500, else I32.
DType best_dtype(int64_t vocab_size);

// Megatron's dtype code: 1 U8, 2 I8, 3 I16, 4 I32, 5 I64, 6 F64, 7 F32, 8 U16. BF16 and F16 have
// no code: throws cs::Error.
uint8_t mmidx_dtype_code(DType t);

// A read-only MMIDIDX dataset: both files mapped, index validated. Movable, not copyable.
class IndexedDataset {
 public:
  // Opens PREFIX.idx and PREFIX.bin; throws cs::Error naming the file and the problem.
  explicit IndexedDataset(const std::string& prefix);
  // The same, as a factory.
  static IndexedDataset open(const std::string& prefix) { return IndexedDataset(prefix); }
  IndexedDataset(IndexedDataset&& o) noexcept;
  IndexedDataset& operator=(IndexedDataset&& o) noexcept;
  IndexedDataset(const IndexedDataset&) = delete;
  IndexedDataset& operator=(const IndexedDataset&) = delete;

  // The prefix given to open().
  const std::string& prefix() const { return prefix_; }
  // Number of sequences (items).
  int64_t size() const { return count_; }
  // Number of documents.
  int64_t num_docs() const { return int64_t(doc_index_.size()) - 1; }
  // Document d is sequences [doc_index()[d], doc_index()[d + 1]); num_docs() + 1 entries,
  // starting at 0 and ending at size().
  const std::vector<int64_t>& doc_index() const { return doc_index_; }
  // Tokens in sequence I.
  int32_t length(int64_t i) const;
  // Byte offset of sequence I in the .bin file.
  int64_t pointer(int64_t i) const;
  // The token dtype stored in the .bin file.
  DType dtype() const { return dtype_; }
  // Copies tokens [OFFSET, OFFSET + COUNT) of sequence SEQ to DST as int32. The range must lie
  // inside the sequence. Values that do not fit int32 (I64, float data) throw cs::Error.
  void read(int64_t seq, int64_t offset, int64_t count, int32_t* dst) const;

 private:
  void validate();
  [[noreturn]] void fail(const std::string& file, const std::string& what) const;

  std::string prefix_;
  MappedFile idx_, bin_;
  DType dtype_ = DType::U16;
  int64_t count_ = 0;
  size_t lengths_at_ = 0, pointers_at_ = 0;  // byte offsets of the arrays in the .idx map
  std::vector<int64_t> doc_index_;
};

// Writes an MMIDIDX dataset the way Megatron's IndexedDatasetBuilder does: each add_item is one
// sequence, end_document closes a document. Files appear (renamed from .tmp) only on finalize();
// destroyed before that, the writer removes its .tmp files.
class IndexedDatasetWriter {
 public:
  // Creates PREFIX.bin.tmp; DTYPE must have a Megatron code (see mmidx_dtype_code).
  IndexedDatasetWriter(const std::string& prefix, DType dtype);
  IndexedDatasetWriter(const IndexedDatasetWriter&) = delete;
  IndexedDatasetWriter& operator=(const IndexedDatasetWriter&) = delete;

  // Appends one sequence of N token ids; an id that does not fit the dtype throws cs::Error.
  void add_item(const int32_t* ids, int64_t n);
  // Closes the current document (Megatron appends the sequence count to the document indices).
  void end_document();
  // Closes a pending document, writes PREFIX.idx, fsyncs both files and renames them into place.
  void finalize();
  // Sequences added so far.
  int64_t num_items() const { return int64_t(lengths_.size()); }
  // Documents closed so far.
  int64_t num_docs() const { return int64_t(doc_index_.size()) - 1; }

 private:
  [[noreturn]] void fail(const std::string& what) const;
  std::string prefix_;
  DType dtype_;  // checked before bin_ creates its file
  AtomicFile bin_;
  std::vector<int32_t> lengths_;
  std::vector<int64_t> doc_index_{0};
  std::vector<uint8_t> scratch_;
  bool finalized_ = false;
};

}  // namespace cs
