// Safetensors: header parsing and validation, views, float conversion, and the writer.
// Validation follows the reference implementation (huggingface/safetensors Metadata::validate):
// offsets must tile [0, data size) exactly, in some order, with no overlap, gap or trailing byte,
// so anything we accept the Python and Rust readers accept too.
#include "checkpoint/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "checkpoint/safetensors_stream.h"
#include "core/half.h"

namespace cs {

namespace {

using ojson = nlohmann::ordered_json;

// Same limit as the reference implementation (MAX_HEADER_SIZE).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
// Conversions of more elements than this use all OpenMP threads (page faults on the map dominate).
constexpr int64_t kParallelMin = int64_t(1) << 18;

bool parse_dtype(const std::string& s, DType* t) {
  static const std::pair<const char*, DType> table[] = {
      {"F64", DType::F64}, {"F32", DType::F32}, {"F16", DType::F16}, {"BF16", DType::BF16},
      {"I64", DType::I64}, {"I32", DType::I32}, {"I16", DType::I16}, {"I8", DType::I8},
      {"U8", DType::U8},   {"BOOL", DType::U8}, {"U16", DType::U16}};
  for (const auto& [name, dt] : table)
    if (s == name) {
      *t = dt;
      return true;
    }
  return false;
}

std::string in_quotes(const std::string& name) { return "'" + name + "'"; }

}  // namespace

bool is_float_dtype(DType t) {
  return t == DType::F32 || t == DType::F64 || t == DType::F16 || t == DType::BF16;
}

void convert_to_f32(const void* src, DType t, int64_t n, float* dst) {
  const uint8_t* p = static_cast<const uint8_t*>(src);
  switch (t) {
    case DType::F32:
      std::memcpy(dst, p, size_t(n) * 4);
      return;
    case DType::F64:
#pragma omp parallel for if (n > kParallelMin)
      for (int64_t i = 0; i < n; ++i) {
        double d;
        std::memcpy(&d, p + 8 * i, 8);
        dst[i] = float(d);
      }
      return;
    case DType::BF16:
    case DType::F16: {
      float (*const to_f32)(uint16_t) = t == DType::BF16 ? bf16_to_f32 : f16_to_f32;
#pragma omp parallel for if (n > kParallelMin)
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);  // unaligned-safe
        dst[i] = to_f32(h);
      }
      return;
    }
    default:
      CS_CHECK(false) << "convert_to_f32 of " << dtype_name(t);
  }
}

void SafetensorsFile::fail(const std::string& what, const std::string& hint) const {
  throw Error("[safetensors] " + path() + ": " + what + ". Hint: " + hint);
}

SafetensorsFile::SafetensorsFile(const std::string& path)
    : map_(MappedFile::open(path, "safetensors")) {
  parse();
}

void SafetensorsFile::parse() {
  const std::string truncated = "the file is truncated or not a safetensors file; re-download or re-save it";
  const uint64_t size = map_.size();
  if (size < 8)
    fail("file too short: got " + std::to_string(size) + " bytes, expected at least 8", truncated);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | map_.data()[i];  // little-endian u64
  if (n > kMaxHeaderBytes)
    fail("header length got " + std::to_string(n) + " bytes, expected at most " +
             std::to_string(kMaxHeaderBytes), truncated);
  if (n > size - 8)
    fail("header length got " + std::to_string(n) + " bytes, expected at most " +
             std::to_string(size - 8) + " (file is " + std::to_string(size) + " bytes)", truncated);
  const char* h = reinterpret_cast<const char*>(map_.data() + 8);
  if (n < 2 || h[0] != '{')
    fail("header does not start with '{'", truncated);
  data_start_ = 8 + n;
  const uint64_t data_size = size - data_start_;

  std::unordered_set<std::string> seen;
  std::string duplicate;
  ojson header;
  try {
    header = ojson::parse(h, h + n, [&](int depth, ojson::parse_event_t ev, ojson& parsed) {
      if (depth == 1 && ev == ojson::parse_event_t::key && !seen.insert(parsed.get<std::string>()).second &&
          duplicate.empty())
        duplicate = parsed.get<std::string>();
      return true;
    });
  } catch (const nlohmann::json::exception& e) {
    fail(std::string("header is not valid JSON: ") + e.what(), truncated);
  }
  if (!header.is_object()) fail("header is not a JSON object", truncated);
  if (!duplicate.empty())
    fail("header names " + in_quotes(duplicate) + " twice", "the file is corrupt; re-save it");

  const std::string corrupt = "the header is corrupt; re-save the file";
  for (const auto& [name, v] : header.items()) {
    if (name == "__metadata__") {
      if (!v.is_object()) fail("__metadata__ is not a JSON object", corrupt);
      for (const auto& [k, s] : v.items()) {
        if (!s.is_string())
          fail("__metadata__ entry " + in_quotes(k) + ": got " + s.type_name() + ", expected a string",
               corrupt);
        metadata_[k] = s.get<std::string>();
      }
      continue;
    }
    const std::string what = "tensor " + in_quotes(name) + ": ";
    if (!v.is_object()) fail(what + "got " + v.type_name() + ", expected an object", corrupt);
    if (!v.contains("dtype") || !v["dtype"].is_string())
      fail(what + "missing string field \"dtype\"", corrupt);
    if (!v.contains("shape") || !v["shape"].is_array())
      fail(what + "missing list field \"shape\"", corrupt);
    if (!v.contains("data_offsets") || !v["data_offsets"].is_array())
      fail(what + "missing list field \"data_offsets\"", corrupt);
    Entry e;
    std::string dt = v["dtype"].get<std::string>();
    if (!parse_dtype(dt, &e.dtype))
      fail(what + "dtype got " + dt + ", expected one of F64 F32 F16 BF16 I64 I32 I16 I8 U8 U16 BOOL",
           "convert the tensor to a supported dtype");
    const ojson& shape = v["shape"];
    if (shape.size() > 4)
      fail(what + "shape has " + std::to_string(shape.size()) + " dims, expected at most 4",
           "ChuanSpeed tensors have at most 4 dims; reshape the tensor before saving");
    uint64_t numel = 1;
    e.shape.ndim = int(shape.size());
    for (size_t i = 0; i < shape.size(); ++i) {
      if (!shape[i].is_number_unsigned() ||
          shape[i].get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
        fail(what + "shape entry got " + shape[i].dump() + ", expected a non-negative integer", corrupt);
      e.shape.dims[i] = int64_t(shape[i].get<uint64_t>());
      if (__builtin_mul_overflow(numel, uint64_t(e.shape.dims[i]), &numel))
        fail(what + "shape " + shape.dump() + " overflows", corrupt);
    }
    const ojson& off = v["data_offsets"];
    if (off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      fail(what + "data_offsets got " + off.dump() + ", expected [begin, end]", corrupt);
    e.begin = off[0].get<uint64_t>();
    e.end = off[1].get<uint64_t>();
    uint64_t nbytes = 0;
    if (__builtin_mul_overflow(numel, uint64_t(dtype_size(e.dtype)), &nbytes))
      fail(what + "shape " + shape.dump() + " overflows", corrupt);
    if (e.end < e.begin)
      fail(what + "data_offsets " + off.dump() + " end before begin", corrupt);
    if (e.end - e.begin != nbytes)
      fail(what + "data_offsets " + off.dump() + " span " + std::to_string(e.end - e.begin) +
               " bytes, expected " + std::to_string(nbytes) + " (shape " + e.shape.str() + " of " +
               dt + ")", corrupt);
    if (e.end > data_size)
      fail(what + "data ends at byte " + std::to_string(e.end) + " of the data section, beyond " +
               "the end of the file (data section has " + std::to_string(data_size) + " bytes)",
           truncated);
    names_.push_back(name);
    entries_.emplace(name, e);
  }

  // The tensors must tile the data section: sorted by offset, each begins where the last ended.
  std::vector<const std::string*> order;
  for (const auto& name : names_) order.push_back(&name);
  std::sort(order.begin(), order.end(), [&](const std::string* a, const std::string* b) {
    const Entry &x = entries_.at(*a), &y = entries_.at(*b);
    return x.begin != y.begin ? x.begin < y.begin : x.end < y.end;
  });
  uint64_t cursor = 0;
  const std::string* prev = nullptr;
  for (const std::string* name : order) {
    const Entry& e = entries_.at(*name);
    if (e.begin < cursor)
      fail("tensor " + in_quotes(*name) + " bytes [" + std::to_string(e.begin) + ", " +
               std::to_string(e.end) + ") overlap tensor " + in_quotes(*prev) + " (ends at " +
               std::to_string(cursor) + ")", corrupt);
    if (e.begin > cursor)
      fail("tensor " + in_quotes(*name) + " begins at byte " + std::to_string(e.begin) +
               ", expected " + std::to_string(cursor) + " (a gap after " +
               (prev ? "tensor " + in_quotes(*prev) : std::string("the header")) + ")", corrupt);
    cursor = e.end;
    prev = name;
  }
  if (cursor != data_size)
    fail("data section got " + std::to_string(data_size) + " bytes, expected " +
             std::to_string(cursor) + " (the tensors' total)", corrupt);
}

const SafetensorsFile::Entry& SafetensorsFile::entry(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end())
    fail("no tensor named " + in_quotes(name) + " (the file has " + std::to_string(names_.size()) +
             " tensors)", "check the tensor name; names() lists what the file holds");
  return it->second;
}

Tensor SafetensorsFile::tensor(const std::string& name) const {
  const Entry& e = entry(name);
  return Tensor(const_cast<uint8_t*>(bytes(e)), e.shape, e.dtype);
}

void SafetensorsFile::read_f32(const std::string& name, float* dst, int64_t count) const {
  const Entry& e = entry(name);
  if (!is_float_dtype(e.dtype))
    fail("tensor " + in_quotes(name) + " has dtype " + dtype_name(e.dtype) +
             ", expected F32, F64, F16 or BF16", "this tensor is not a float weight");
  if (count != e.shape.numel())
    fail("tensor " + in_quotes(name) + " has shape " + e.shape.str() + " (" +
             std::to_string(e.shape.numel()) + " elements), got a destination of " +
             std::to_string(count) + " floats",
         "check that the model config matches the checkpoint");
  convert_to_f32(bytes(e), e.dtype, count, dst);
}

void SafetensorsFile::read_f32_rows(const std::string& name, int64_t row_begin, int64_t row_end,
                                    float* dst) const {
  const Entry& e = entry(name);
  if (!is_float_dtype(e.dtype))
    fail("tensor " + in_quotes(name) + " has dtype " + dtype_name(e.dtype) +
             ", expected F32, F64, F16 or BF16", "this tensor is not a float weight");
  if (e.shape.ndim < 1 || row_begin < 0 || row_begin > row_end || row_end > e.shape[0])
    fail("tensor " + in_quotes(name) + " rows [" + std::to_string(row_begin) + ", " +
             std::to_string(row_end) + ") out of range for shape " + e.shape.str(),
         "check the sharding of this tensor");
  int64_t row = e.shape[0] ? e.shape.numel() / e.shape[0] : 0;
  convert_to_f32(bytes(e) + size_t(row_begin * row) * dtype_size(e.dtype), e.dtype,
                 (row_end - row_begin) * row, dst);
}

// Writer: the streaming writer (header JSON space-padded to 8 bytes so the data section is 8-byte
// aligned, then each tensor's bytes in the given order with no gaps, which the reference readers
// require), fed whole tensors.
void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<TensorEntry> entries;
  for (const NamedTensor& nt : tensors) {
    CS_CHECK(nt.t.device == Device::CPU) << "write_safetensors of a device tensor " << nt.name;
    CS_CHECK(nt.t.data || nt.t.nbytes() == 0) << "null data for " << nt.name;
    entries.push_back({nt.name, nt.t.dtype, nt.t.shape});
  }
  SafetensorsStreamWriter out(path, std::move(entries), metadata);
  for (const NamedTensor& nt : tensors) out.append(nt.t.data, nt.t.nbytes());
  out.commit();
}

}  // namespace cs
