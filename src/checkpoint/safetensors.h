// Safetensors (Hugging Face's tensor file): a strict mmap reader and an atomic writer.
// The reader validates the whole header up front (dtypes, shapes, offsets that tile the data
// section exactly, as the reference Rust implementation requires) so later reads cannot fail
// on layout; tensor views point into the read-only map. Format facts: checkpoint/README.md.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/file_io.h"
#include "core/tensor.h"

namespace cs {

// A tensor with the name it is saved under.
struct NamedTensor {
  std::string name;
  Tensor t;
};

// One safetensors file, memory-mapped read-only. Movable; unmapped when destroyed, which
// invalidates every Tensor view handed out.
class SafetensorsFile {
 public:
  // Opens and validates PATH; throws cs::Error naming the file (and the tensor) on bad input.
  explicit SafetensorsFile(const std::string& path);
  // The same, as a factory.
  static SafetensorsFile open(const std::string& path) { return SafetensorsFile(path); }

  // The file's path, as given to open().
  const std::string& path() const { return map_.path(); }
  // Tensor names in header order (excluding __metadata__).
  const std::vector<std::string>& names() const { return names_; }
  // Whether the file holds a tensor of that name.
  bool has(const std::string& name) const { return entries_.count(name) != 0; }
  // The tensor's shape; throws cs::Error naming the tensor if missing.
  Shape shape(const std::string& name) const { return entry(name).shape; }
  // The tensor's dtype (BOOL reads as U8); throws cs::Error naming the tensor if missing.
  DType dtype(const std::string& name) const { return entry(name).dtype; }
  // A read-only view into the map. The data may be unaligned for its dtype when an earlier
  // tensor has an odd byte size; read_f32 copes with that, raw pointer casts may not.
  Tensor tensor(const std::string& name) const;
  // The __metadata__ string map (empty if the file has none).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Copies the whole tensor to DST as float, converting F32/BF16/F16/F64; COUNT must equal
  // its element count. Integer dtypes are an error naming the tensor.
  void read_f32(const std::string& name, float* dst, int64_t count) const;
  // Copies rows [ROW_BEGIN, ROW_END) of the leading dimension to DST as float
  // ((ROW_END - ROW_BEGIN) * row size elements), for reading one rank's slice.
  void read_f32_rows(const std::string& name, int64_t row_begin, int64_t row_end,
                     float* dst) const;

 private:
  struct Entry {
    DType dtype = DType::F32;
    Shape shape;
    uint64_t begin = 0, end = 0;  // relative to the first data byte
  };
  void parse();
  const Entry& entry(const std::string& name) const;
  const uint8_t* bytes(const Entry& e) const { return map_.data() + data_start_ + e.begin; }
  [[noreturn]] void fail(const std::string& what, const std::string& hint) const;

  MappedFile map_;
  uint64_t data_start_ = 0;  // 8 + header length
  std::vector<std::string> names_;
  std::unordered_map<std::string, Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

// Converts N elements of dtype T at SRC (any alignment) to float. Float dtypes only; an integer
// dtype is a bug here (callers check first).
void convert_to_f32(const void* src, DType t, int64_t n, float* dst);

// Whether read_f32 accepts the dtype (F32, F64, F16, BF16).
bool is_float_dtype(DType t);

// Writes TENSORS (in the given order, contiguous, data section 8-byte aligned) and METADATA to
// PATH via PATH.tmp + fsync + rename. Names must be unique, non-empty, and not "__metadata__".
void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace cs
