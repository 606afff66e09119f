// Thrift compact protocol decoder: every byte read goes through read_byte() or a length checked
// against the bytes left, so a corrupt or truncated buffer is a cs::Error, never a stray read.
// Nesting is limited (kMaxDepth) so a hostile buffer cannot exhaust the stack while skipping.
#include "data/parquet/thrift_compact.h"

#include <cstring>

#include "core/error.h"

namespace cs::parquet {

namespace {
constexpr int kMaxDepth = 64;
constexpr const char* kHint = "the file is corrupt, truncated or not a Parquet file";
}  // namespace

const char* thrift_type_name(uint8_t type) {
  static const char* const kNames[] = {"STOP", "BOOL", "BOOL", "BYTE",  "I16",    "I32", "I64",
                                       "DOUBLE", "BINARY", "LIST", "SET", "MAP", "STRUCT", "UUID"};
  return type < sizeof(kNames) / sizeof(kNames[0]) ? kNames[type] : "unknown";
}

ThriftCompactReader::ThriftCompactReader(const uint8_t* data, size_t size, std::string context)
    : data_(data), size_(size), context_(std::move(context)) {}

void ThriftCompactReader::fail(const std::string& what) const {
  std::string in;
  for (auto it = names_.rbegin(); it != names_.rend(); ++it)
    if (*it) {
      in = std::string(" in ") + *it;
      break;
    }
  throw Error(context_ + ": " + what + in + " at byte " + std::to_string(pos_) + " of " +
              std::to_string(size_) + ". Hint: " + kHint);
}

uint8_t ThriftCompactReader::read_byte() {
  if (pos_ >= size_) fail("unexpected end of data");
  return data_[pos_++];
}

uint64_t ThriftCompactReader::read_varint() {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (pos_ >= size_) fail("varint runs past the end of the data");
    uint8_t b = data_[pos_++];
    v |= uint64_t(b & 0x7f) << shift;
    if (!(b & 0x80)) return v;
  }
  fail("varint longer than 10 bytes");
}

int64_t ThriftCompactReader::read_zigzag() {
  uint64_t u = read_varint();
  return int64_t(u >> 1) ^ -int64_t(u & 1);
}

void ThriftCompactReader::struct_begin(const char* name) {
  if (last_ids_.size() >= size_t(kMaxDepth)) fail("structs nested deeper than 64");
  last_ids_.push_back(0);
  names_.push_back(name);
}

void ThriftCompactReader::struct_end() {
  if (!last_ids_.empty()) last_ids_.pop_back();
  if (!names_.empty()) names_.pop_back();
}

ThriftField ThriftCompactReader::field_begin() {
  uint8_t b = read_byte();
  ThriftField f;
  f.type = b & 0x0f;
  if (f.type == kThriftStop) return f;
  if (f.type > kThriftUuid) fail("unknown field type " + std::to_string(f.type));
  CS_CHECK(!last_ids_.empty()) << "field_begin() outside struct_begin()/struct_end()";
  int16_t& last = last_ids_.back();
  int delta = b >> 4;
  if (delta != 0) {
    f.id = int16_t(last + delta);
  } else {
    int64_t id = read_zigzag();
    if (id < INT16_MIN || id > INT16_MAX) fail("field id " + std::to_string(id) + " out of range");
    f.id = int16_t(id);
  }
  last = f.id;
  return f;
}

void ThriftCompactReader::expect_type(const ThriftField& field, uint8_t type) {
  bool ok = field.type == type || (type == kThriftTrue && field.type == kThriftFalse);
  if (!ok)
    fail("field " + std::to_string(field.id) + " has wire type " + thrift_type_name(field.type) +
         ", expected " + thrift_type_name(type));
}

bool ThriftCompactReader::read_bool(const ThriftField& field) {
  expect_type(field, kThriftTrue);
  return field.type == kThriftTrue;
}

int32_t ThriftCompactReader::read_i32(const ThriftField& field) {
  expect_type(field, kThriftI32);
  return read_i32_elem();
}

int32_t ThriftCompactReader::read_i32_elem() {
  int64_t v = read_zigzag();
  if (v < INT32_MIN || v > INT32_MAX) fail("i32 value " + std::to_string(v) + " out of range");
  return int32_t(v);
}

int64_t ThriftCompactReader::read_i64(const ThriftField& field) {
  expect_type(field, kThriftI64);
  return read_zigzag();
}

std::string_view ThriftCompactReader::read_binary(const ThriftField& field) {
  expect_type(field, kThriftBinary);
  return read_binary_elem();
}

std::string_view ThriftCompactReader::read_binary_elem() {
  uint64_t n = read_varint();
  if (n > size_ - pos_)
    fail("binary of " + std::to_string(n) + " bytes runs past the end of the data");
  std::string_view s(reinterpret_cast<const char*>(data_ + pos_), size_t(n));
  pos_ += size_t(n);
  return s;
}

ThriftList ThriftCompactReader::read_list(const ThriftField& field, uint8_t expected_elem_type) {
  expect_type(field, kThriftList);
  uint8_t b = read_byte();
  ThriftList l;
  l.elem_type = b & 0x0f;
  l.size = b >> 4;
  if (l.size == 15) l.size = read_varint();
  if (l.elem_type != expected_elem_type)
    fail("list field " + std::to_string(field.id) + " holds " + thrift_type_name(l.elem_type) +
         ", expected " + thrift_type_name(expected_elem_type));
  // Every element takes at least one byte: a larger count cannot be real.
  if (l.size > size_ - pos_)
    fail("list of " + std::to_string(l.size) + " elements runs past the end of the data");
  return l;
}

void ThriftCompactReader::skip(uint8_t type) { skip_depth(type, 0); }

void ThriftCompactReader::skip_depth(uint8_t type, int depth) {
  if (depth > kMaxDepth) fail("values nested deeper than 64");
  auto skip_bytes = [&](uint64_t n) {
    if (n > size_ - pos_) fail("value of " + std::to_string(n) + " bytes runs past the end");
    pos_ += size_t(n);
  };
  switch (type) {
    case kThriftTrue:
    case kThriftFalse:
      return;  // a bool field's value is its type; list elements use skip_elem below
    case kThriftByte:
      skip_bytes(1);
      return;
    case kThriftI16:
    case kThriftI32:
    case kThriftI64:
      read_varint();
      return;
    case kThriftDouble:
      skip_bytes(8);
      return;
    case kThriftUuid:
      skip_bytes(16);
      return;
    case kThriftBinary:
      skip_bytes(read_varint());
      return;
    case kThriftList:
    case kThriftSet: {
      uint8_t b = read_byte();
      uint8_t elem = b & 0x0f;
      uint64_t n = b >> 4;
      if (n == 15) n = read_varint();
      if (n > size_ - pos_) fail("list of " + std::to_string(n) + " elements runs past the end");
      for (uint64_t i = 0; i < n; ++i) {
        if (elem == kThriftTrue || elem == kThriftFalse)
          skip_bytes(1);  // bools in a list take one byte each
        else
          skip_depth(elem, depth + 1);
      }
      return;
    }
    case kThriftMap: {
      uint64_t n = read_varint();
      if (n == 0) return;
      if (n > size_ - pos_) fail("map of " + std::to_string(n) + " entries runs past the end");
      uint8_t kv = read_byte();
      for (uint64_t i = 0; i < n; ++i) {
        for (uint8_t t : {uint8_t(kv >> 4), uint8_t(kv & 0x0f)}) {
          if (t == kThriftTrue || t == kThriftFalse)
            skip_bytes(1);
          else
            skip_depth(t, depth + 1);
        }
      }
      return;
    }
    case kThriftStruct: {
      struct_begin();
      for (;;) {
        ThriftField f = field_begin();
        if (f.type == kThriftStop) break;
        skip_depth(f.type, depth + 1);
      }
      struct_end();
      return;
    }
    default:
      fail("cannot skip a value of unknown wire type " + std::to_string(type));
  }
}

}  // namespace cs::parquet
