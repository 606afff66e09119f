// File I/O for the on-disk formats (checkpoint, data): a read-only memory map, and a file written
// beside its final name (PATH.tmp), fsynced and renamed into place so a reader never sees a
// partial file. POSIX only; not a general VFS. Errors are cs::Error tagged with the caller's
// component ("[safetensors] PATH: ...").
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace cs {

// A whole file mapped read-only (MAP_PRIVATE). Movable, unmapped in the destructor.
class MappedFile {
 public:
  MappedFile() = default;
  // Maps PATH; throws cs::Error "[COMPONENT] PATH: cannot open: <reason>. Hint: HINT" when PATH
  // is missing, unreadable or not a regular file (HINT null: a generic hint for each case).
  // An empty file maps to data() == nullptr, size() == 0.
  static MappedFile open(const std::string& path, const char* component, const char* hint = nullptr);
  ~MappedFile();
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  void reset();
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Throws cs::Error "[COMPONENT] PATH: not a regular file (a FIFO ...). Hint: HINT" when PATH exists
// (after symbolic links) and is anything but a regular file; does nothing for a regular file or a
// missing PATH (the caller's own message says it is missing). Every reader of a weight, dataset,
// config or tokenizer file calls it first: opening a FIFO for reading blocks until a writer
// comes, and a device may never end.
void require_regular_file(const std::string& path, const char* component, const char* hint = nullptr);

// Writes PATH.tmp through a buffer; commit() flushes, fsyncs, renames it to PATH and fsyncs the
// directory. Destroyed without commit() (an exception on the way), it removes PATH.tmp.
// sync() does the flush and fsync alone, so a writer of several files can make them all durable
// before it renames any.
class AtomicFile {
 public:
  AtomicFile(std::string path, const char* component);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Appends N bytes; throws cs::Error naming the file on an I/O failure (disk full, ...).
  void write(const void* p, size_t n);
  // Bytes written so far.
  uint64_t offset() const { return offset_; }
  // Flushes and fsyncs PATH.tmp and closes it; no write() after it. Optional before commit().
  void sync();
  // Makes the file visible under its final name (syncing it first if sync() was not called).
  // Call once.
  void commit();
  const std::string& path() const { return path_; }

 private:
  void flush();
  [[noreturn]] void fail(const std::string& what) const;
  std::string path_, tmp_;
  const char* component_;
  int fd_ = -1;  // open until sync()
  bool committed_ = false;
  std::vector<uint8_t> buf_;
  uint64_t offset_ = 0;
};

// Writes TEXT to PATH through an AtomicFile (beside its name, fsynced, renamed); COMPONENT tags
// errors. For small files: configs, meta.json, latest-iteration and heartbeat files.
void write_file_atomic(const std::string& path, const std::string& text, const char* component);

}  // namespace cs
