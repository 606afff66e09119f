// Streaming safetensors writer: the header (every tensor's name, dtype and shape) is known up
// front, then the data section is appended in pieces of any size, tensor after tensor, in header
// order. A conversion writes a multi-GB file while holding only one chunk in memory; the bytes
// are exactly what write_safetensors produces for the same tensors (it is built on this class).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/file_io.h"
#include "core/tensor.h"

namespace cs {

// One tensor of a header: its data is dtype-size × shape.numel() bytes.
struct TensorEntry {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  uint64_t nbytes() const { return uint64_t(shape.numel()) * dtype_size(dtype); }
};

class SafetensorsStreamWriter {
 public:
  // Validates the names (unique, non-empty, not "__metadata__"), writes the 8-byte length and
  // the header (space-padded to 8 bytes) to PATH.tmp. Throws cs::Error naming PATH.
  SafetensorsStreamWriter(std::string path, std::vector<TensorEntry> entries,
                          const std::map<std::string, std::string>& metadata = {});
  // Appends the next N bytes of the data section (may span tensors). Writing past the last
  // tensor is a bug (CS_CHECK).
  void append(const void* p, size_t n);
  // Bytes of the data section still to append; 0 when complete.
  uint64_t remaining() const { return total_ - written_; }
  const std::vector<TensorEntry>& entries() const { return entries_; }
  // Checks that every byte was written, then fsyncs and renames PATH.tmp to PATH. Without it
  // (an exception on the way), the destructor removes PATH.tmp.
  void commit();
  const std::string& path() const { return file_->path(); }

 private:
  std::vector<TensorEntry> entries_;
  std::vector<uint64_t> ends_;  // cumulative end offset of each tensor
  uint64_t total_ = 0, written_ = 0;
  std::unique_ptr<AtomicFile> file_;
};

// Drops the pages of [P, P + N) from this process's read-only file mapping (madvise DONTNEED,
// widened to whole pages): the page cache keeps them, a later access faults them back in, so a
// streaming reader's resident set stays one chunk however large the file.
void drop_mapped_pages(const void* p, size_t n);

}  // namespace cs
