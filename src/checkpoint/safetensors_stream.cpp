// The streaming safetensors writer and the page dropper streaming readers use.
#include "checkpoint/safetensors_stream.h"

#include <sys/mman.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <unordered_set>

#include "core/error.h"

namespace cs {

SafetensorsStreamWriter::SafetensorsStreamWriter(std::string path, std::vector<TensorEntry> entries,
                                                 const std::map<std::string, std::string>& metadata)
    : entries_(std::move(entries)) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::unordered_set<std::string> seen;
  for (const TensorEntry& e : entries_) {
    if (e.name.empty() || e.name == "__metadata__")
      throw Error("[safetensors] " + path + ": tensor name got '" + e.name +
                  "', expected a non-empty name other than __metadata__. Hint: rename the tensor");
    if (!seen.insert(e.name).second)
      throw Error("[safetensors] " + path + ": tensor name '" + e.name +
                  "' given twice. Hint: each tensor needs a unique name");
    auto shape = nlohmann::ordered_json::array();
    for (int i = 0; i < e.shape.ndim; ++i) shape.push_back(e.shape[i]);
    const uint64_t end = total_ + e.nbytes();
    header[e.name] = {{"dtype", dtype_name(e.dtype)}, {"shape", shape}, {"data_offsets", {total_, end}}};
    total_ = end;
    ends_.push_back(end);
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');  // the data section starts 8-byte aligned
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(json.size()) >> (8 * i));
  file_ = std::make_unique<AtomicFile>(std::move(path), "safetensors");
  file_->write(len, 8);
  file_->write(json.data(), json.size());
}

void SafetensorsStreamWriter::append(const void* p, size_t n) {
  CS_CHECK(written_ + n <= total_) << file_->path() << ": " << written_ + n << " data bytes appended, the header holds "
                                   << total_;
  file_->write(p, n);
  written_ += n;
}

void SafetensorsStreamWriter::commit() {
  CS_CHECK(written_ == total_) << file_->path() << ": " << written_ << " of " << total_ << " data bytes written";
  file_->commit();
}

void drop_mapped_pages(const void* p, size_t n) {
  if (n == 0) return;
  static const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(p) & ~(page - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + n + page - 1) & ~(page - 1);
  // Advisory: a failure only means the pages stay resident a little longer.
  (void)madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

}  // namespace cs
