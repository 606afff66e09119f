// A bounds-checked decoder for the Thrift compact protocol, just enough for Parquet's footer and
// page headers: field headers, varint/zigzag integers, doubles, binary, lists, and skipping of any
// field it is not asked for (structs, sets, maps, nested to a fixed depth). Not a Thrift runtime:
// no writer, no schema. Every read past the end or malformed value is a cs::Error that starts with
// the caller's context ("[parquet] PATH: footer"), never an out-of-bounds read or a hang.
// Spec: https://github.com/apache/thrift/blob/master/doc/specs/thrift-compact-protocol.md
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cs::parquet {

// Compact protocol wire types (the low nibble of a field header, or a list's element type).
enum ThriftType : uint8_t {
  kThriftStop = 0,
  kThriftTrue = 1,  // a bool field whose value is true; the element type of a list of bools
  kThriftFalse = 2,
  kThriftByte = 3,
  kThriftI16 = 4,
  kThriftI32 = 5,
  kThriftI64 = 6,
  kThriftDouble = 7,
  kThriftBinary = 8,
  kThriftList = 9,
  kThriftSet = 10,
  kThriftMap = 11,
  kThriftStruct = 12,
  kThriftUuid = 13,
};

// The name of a wire type, for messages ("I32", "STRUCT", ...).
const char* thrift_type_name(uint8_t type);

// One field header: its id and wire type; type == kThriftStop ends the struct.
struct ThriftField {
  int16_t id = 0;
  uint8_t type = kThriftStop;
};

// A list or set header: element wire type and element count (checked against the bytes left).
struct ThriftList {
  uint8_t elem_type = kThriftStop;
  size_t size = 0;
};

// Reads one struct (and what it contains) from [data, data + size).
class ThriftCompactReader {
 public:
  // CONTEXT starts every error message, e.g. "[parquet] f.parquet: footer (FileMetaData)".
  ThriftCompactReader(const uint8_t* data, size_t size, std::string context);

  // Enters a struct (resets the field-id delta base); pair each with struct_end(). NAME (a
  // string literal, or null while skipping) shows in error messages ("in ColumnMetaData").
  void struct_begin(const char* name = nullptr);
  void struct_end();
  // Reads the next field header of the current struct.
  ThriftField field_begin();

  // Values. Each checks that FIELD's wire type is the expected one (a mismatch is an error).
  bool read_bool(const ThriftField& field);
  int32_t read_i32(const ThriftField& field);
  int64_t read_i64(const ThriftField& field);
  std::string_view read_binary(const ThriftField& field);
  // Reads a list header for FIELD; the elements follow (read them with the *_elem functions).
  ThriftList read_list(const ThriftField& field, uint8_t expected_elem_type);
  int32_t read_i32_elem();
  std::string_view read_binary_elem();

  // Skips one value of wire type TYPE (whole structs, lists, sets, maps included).
  void skip(uint8_t type);

  // Bytes consumed so far from the start of the buffer.
  size_t position() const { return pos_; }
  const std::string& context() const { return context_; }

  // Throws cs::Error "CONTEXT: WHAT in STRUCT at byte N of SIZE. Hint: ...".
  [[noreturn]] void fail(const std::string& what) const;

 private:
  uint64_t read_varint();
  int64_t read_zigzag();
  uint8_t read_byte();
  void expect_type(const ThriftField& field, uint8_t type);
  void skip_depth(uint8_t type, int depth);

  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  std::string context_;
  std::vector<int16_t> last_ids_;  // per open struct: the last field id read (delta base)
  std::vector<const char*> names_;  // per open struct: its name, or null
};

}  // namespace cs::parquet
