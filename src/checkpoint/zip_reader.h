// ZipReader: a strict reader of the ZIP container that torch.save writes (PyTorch's miniz
// writer), over a read-only mmap. Only uncompressed (STORED), unencrypted, single-disk archives;
// ZIP64 records are understood, so files and entries past 4 GiB read. It is not a general unzip:
// anything else is a cs::Error "[zip] PATH: ..." naming the entry. Every offset and length in
// the archive is bounds-checked against the file when it is opened, so data() cannot fail later.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/file_io.h"

namespace cs {

class ZipReader {
 public:
  // Maps PATH and reads its central directory; throws cs::Error naming the file (and the entry)
  // on a truncated, corrupt or unsupported archive.
  explicit ZipReader(const std::string& path);

  // The file's path, as given.
  const std::string& path() const { return map_.path(); }
  // Entry names in central-directory order.
  const std::vector<std::string>& entries() const { return names_; }
  // Whether the archive holds an entry of that name.
  bool has(const std::string& name) const { return entries_.count(name) != 0; }
  // The entry's bytes inside the map (valid while the reader lives) and their count; throws
  // cs::Error naming the entry if the archive has none of that name.
  std::pair<const uint8_t*, uint64_t> data(const std::string& name) const;

 private:
  struct Entry {
    uint64_t offset = 0;  // of the first data byte, in the file
    uint64_t size = 0;
  };
  void parse();
  [[noreturn]] void fail(const std::string& what) const;
  [[noreturn]] void fail(const std::string& what, const std::string& hint) const;

  MappedFile map_;
  std::vector<std::string> names_;
  std::unordered_map<std::string, Entry> entries_;
};

}  // namespace cs
