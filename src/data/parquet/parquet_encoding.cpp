// PLAIN values and the RLE / bit-packed hybrid. Little-endian reads go through memcpy (no
// unaligned loads); run lengths are checked against the bytes left before any loop runs, so a
// corrupt run header cannot make a loop spin or read past the page.
#include "data/parquet/parquet_encoding.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace cs::parquet {

namespace {

[[noreturn]] void fail(const std::string& context, const std::string& what) {
  throw Error(context + ": " + what + ". Hint: the file is corrupt or truncated");
}

template <typename T>
T load_le(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));  // x86-64 and aarch64 are little-endian, as Parquet is
  return v;
}

}  // namespace

uint32_t read_length_prefix(const uint8_t* data, size_t size, const std::string& context,
                            const char* what) {
  if (size < 4) fail(context, std::string(what) + ": 4-byte length runs past the page end");
  uint32_t n = load_le<uint32_t>(data);
  if (n > size - 4)
    fail(context, std::string(what) + ": length " + std::to_string(n) + " runs past the page end (" +
                      std::to_string(size - 4) + " bytes left)");
  return n;
}

void decode_rle_hybrid(const uint8_t* data, size_t size, int bit_width, size_t count,
                       std::vector<uint32_t>& out, const std::string& context, const char* what) {
  if (bit_width < 0 || bit_width > 32)
    fail(context, std::string(what) + ": bit width " + std::to_string(bit_width) +
                      ", expected 0 to 32");
  const size_t value_bytes = size_t(bit_width + 7) / 8;
  const uint64_t max_value = bit_width == 32 ? UINT32_MAX : (uint64_t(1) << bit_width) - 1;
  size_t pos = 0, got = 0;
  out.reserve(out.size() + count);
  auto short_by = [&](const std::string& run) {
    fail(context, std::string(what) + ": " + run + " runs past the end of its " +
                      std::to_string(size) + " bytes after " + std::to_string(got) + " of " +
                      std::to_string(count) + " values");
  };
  while (got < count) {
    uint64_t header = 0;
    for (int shift = 0;; shift += 7) {
      if (pos >= size) short_by("a run header");
      if (shift > 63) fail(context, std::string(what) + ": run header varint over 10 bytes");
      uint8_t b = data[pos++];
      header |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) break;
    }
    const size_t left = size - pos;
    if (header & 1) {  // bit-packed: (header >> 1) groups of 8 values
      uint64_t groups = header >> 1;
      uint64_t run_bytes = groups > (UINT64_MAX >> 6) ? UINT64_MAX : groups * uint64_t(bit_width);
      uint64_t run_values = groups > (UINT64_MAX >> 3) ? UINT64_MAX : groups * 8;
      size_t take = size_t(std::min<uint64_t>(run_values, count - got));
      size_t need = (take * size_t(bit_width) + 7) / 8;
      if (need > left) short_by("a bit-packed run");
      const uint8_t* p = data + pos;
      for (size_t i = 0; i < take; ++i) {
        size_t bit = i * size_t(bit_width);
        uint64_t word = 0;
        size_t first = bit / 8, last = (bit + size_t(bit_width) + 7) / 8;  // bytes [first, last)
        for (size_t b = first; b < last; ++b) word |= uint64_t(p[b]) << (8 * (b - first));
        out.push_back(uint32_t((word >> (bit % 8)) & max_value));
      }
      got += take;
      pos += size_t(std::min<uint64_t>(run_bytes, left));  // a cut-short final run is fine
    } else {  // RLE: (header >> 1) repeats of one value in value_bytes bytes
      uint64_t run = header >> 1;
      if (value_bytes > left) short_by("an RLE run");
      uint64_t v = 0;
      for (size_t b = 0; b < value_bytes; ++b) v |= uint64_t(data[pos + b]) << (8 * b);
      pos += value_bytes;
      if (v > max_value)
        fail(context, std::string(what) + ": RLE value " + std::to_string(v) + " does not fit in " +
                          std::to_string(bit_width) + " bits");
      size_t take = size_t(std::min<uint64_t>(run, count - got));
      out.insert(out.end(), take, uint32_t(v));
      got += take;
    }
  }
}

size_t decode_plain(ParquetType type, const uint8_t* data, size_t size, size_t count,
                    ValueList& out, const std::string& context) {
  auto need = [&](size_t width) {
    if (count > size / width)
      fail(context, "PLAIN " + parquet_type_name(type) + " values: " + std::to_string(count) +
                        " values need " + std::to_string(count * width) + " bytes, the page has " +
                        std::to_string(size));
    return count * width;
  };
  switch (type) {
    case ParquetType::kBoolean: {
      size_t bytes = (count + 7) / 8;
      if (bytes > size)
        fail(context, "PLAIN BOOLEAN values: " + std::to_string(count) + " values need " +
                          std::to_string(bytes) + " bytes, the page has " + std::to_string(size));
      for (size_t i = 0; i < count; ++i) out.ints.push_back((data[i / 8] >> (i % 8)) & 1);
      return bytes;
    }
    case ParquetType::kInt32: {
      size_t bytes = need(4);
      for (size_t i = 0; i < count; ++i) out.ints.push_back(load_le<int32_t>(data + 4 * i));
      return bytes;
    }
    case ParquetType::kInt64: {
      size_t bytes = need(8);
      for (size_t i = 0; i < count; ++i) out.ints.push_back(load_le<int64_t>(data + 8 * i));
      return bytes;
    }
    case ParquetType::kFloat: {
      size_t bytes = need(4);
      for (size_t i = 0; i < count; ++i) out.doubles.push_back(load_le<float>(data + 4 * i));
      return bytes;
    }
    case ParquetType::kDouble: {
      size_t bytes = need(8);
      for (size_t i = 0; i < count; ++i) out.doubles.push_back(load_le<double>(data + 8 * i));
      return bytes;
    }
    case ParquetType::kByteArray: {
      size_t pos = 0;
      for (size_t i = 0; i < count; ++i) {
        if (size - pos < 4)
          fail(context, "PLAIN BYTE_ARRAY value " + std::to_string(i) + " of " +
                            std::to_string(count) + ": its length runs past the page end");
        uint32_t n = load_le<uint32_t>(data + pos);
        pos += 4;
        if (n > size - pos)
          fail(context, "PLAIN BYTE_ARRAY value " + std::to_string(i) + " of " +
                            std::to_string(count) + ": length " + std::to_string(n) +
                            " runs past the page end (" + std::to_string(size - pos) +
                            " bytes left)");
        out.strings.emplace_back(reinterpret_cast<const char*>(data + pos), n);
        pos += n;
      }
      return pos;
    }
    default:
      fail(context, "physical type " + parquet_type_name(type) + " is not supported");
  }
}

}  // namespace cs::parquet
