// Cached index arrays for the GPT and blended datasets: one file per array (a 32-byte header
// naming the parameter hash, element width and count, then the elements), written atomically
// beside the data and memory-mapped. Not a general container format: a file whose header or size
// does not match what the caller expects is stale or corrupt, never trusted (layout in docs/data.md).
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/file_io.h"

namespace cs {

// What one index file must hold.
struct IndexFileSpec {
  std::string path;
  uint64_t hash = 0;        // hash of every parameter the contents depend on
  uint32_t elem_bytes = 0;  // 2, 4 or 8
  uint64_t count = 0;       // elements
};

// A mapped index file whose header matched its spec.
class IndexFile {
 public:
  IndexFile() = default;
  // Maps SPEC.path when it exists and its header and size match SPEC; otherwise nullopt, with
  // the reason ("missing", "stale: parameter hash differs", "truncated: ...") in *WHY.
  static std::optional<IndexFile> map(const IndexFileSpec& spec, std::string* why);

  template <typename T>
  const T* data() const {
    return reinterpret_cast<const T*>(file_.data() + kHeaderBytes);
  }
  int64_t count() const { return count_; }
  const std::string& path() const { return file_.path(); }

  static constexpr size_t kHeaderBytes = 32;

 private:
  MappedFile file_;
  int64_t count_ = 0;
};

// Hands BUILD's arrays to the files: write(i, data) stores spec i's count elements from DATA.
using IndexWriteFn = std::function<void(size_t i, const void* data)>;

// Maps the files of SPECS. When one is missing, stale or corrupt: with MAY_BUILD, calls BUILD
// (which must call write once per spec), writes every file beside its final name, syncs them
// all, renames them into place and maps them; without MAY_BUILD, throws cs::Error naming the file
// and the reason (a later MPI caller builds on rank 0 and maps on the others). *BUILT says which.
std::vector<IndexFile> index_files_build_or_map(const std::vector<IndexFileSpec>& specs,
                                                bool may_build,
                                                const std::function<void(const IndexWriteFn&)>& build,
                                                bool* built);

// A stable 64-bit hash (FNV-1a) of TEXT: the same on every machine and run.
uint64_t stable_hash(std::string_view text);

// "DIR/NAME_<16 hex digits>" where DIR/NAME is PREFIX, or CACHE_DIR/basename(PREFIX) when
// CACHE_DIR is not empty: the common start of a dataset's cache file names.
std::string index_cache_base(const std::string& prefix, const std::string& cache_dir, uint64_t hash);

}  // namespace cs
