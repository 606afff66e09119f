// Parquet's footer (FileMetaData) and page headers, decoded from the Thrift compact protocol into
// plain structs holding only what a flat-file reader needs; every other field is skipped.
// Decoding checks structure (required fields present, wire types right) but not meaning (offsets
// inside the file, sizes, supported codecs): the reader checks those where it knows the context.
// Field numbers follow parquet.thrift (apache/parquet-format, src/main/thrift/parquet.thrift).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace cs {

// Parquet physical types (parquet.thrift `Type`), with their wire values.
enum class ParquetType : int32_t {
  kBoolean = 0,
  kInt32 = 1,
  kInt64 = 2,
  kInt96 = 3,
  kFloat = 4,
  kDouble = 5,
  kByteArray = 6,
  kFixedLenByteArray = 7,
};

// "BOOLEAN", "INT32", ..., "BYTE_ARRAY"; "type N" for a value outside the enum.
std::string parquet_type_name(ParquetType type);

}  // namespace cs

namespace cs::parquet {

// parquet.thrift `CompressionCodec`, `Encoding`, `PageType`, `FieldRepetitionType`.
enum Codec : int32_t { kUncompressed = 0, kSnappy = 1, kGzip = 2, kZstd = 6 };
enum Encoding : int32_t { kPlain = 0, kPlainDictionary = 2, kRle = 3, kRleDictionary = 8 };
enum PageType : int32_t { kDataPage = 0, kIndexPage = 1, kDictionaryPage = 2, kDataPageV2 = 3 };
enum Repetition : int32_t { kRequired = 0, kOptional = 1, kRepeated = 2 };

// Names for messages: "SNAPPY", "LZ4_RAW", "DELTA_BINARY_PACKED", ...; "N (unknown)" otherwise.
std::string codec_name(int32_t codec);
std::string encoding_name(int32_t encoding);

struct SchemaElement {
  std::string name;
  bool has_type = false;
  int32_t type = 0;           // ParquetType, when has_type
  int32_t repetition = -1;    // Repetition; -1 when absent (the root)
  int32_t num_children = 0;   // > 0 for a group (the root or a nested column)
};

struct ColumnChunkMeta {
  bool has_file_path = false;  // the chunk lives in another file (not supported)
  int32_t type = 0;
  std::vector<int32_t> encodings;
  std::vector<std::string> path_in_schema;
  int32_t codec = 0;
  int64_t num_values = 0;
  int64_t total_uncompressed_size = 0;
  int64_t total_compressed_size = 0;
  int64_t data_page_offset = 0;
  int64_t dictionary_page_offset = -1;  // -1 when absent
};

struct RowGroupMeta {
  std::vector<ColumnChunkMeta> columns;
  int64_t num_rows = 0;
};

struct FileMeta {
  int32_t version = 0;
  std::vector<SchemaElement> schema;  // depth-first: the root, then its children
  int64_t num_rows = 0;
  std::vector<RowGroupMeta> row_groups;
};

// Decodes the footer [data, data + size); errors start with CONTEXT ("[parquet] PATH: footer").
FileMeta decode_file_metadata(const uint8_t* data, size_t size, const std::string& context);

struct PageHeader {
  int32_t type = 0;
  int32_t uncompressed_size = 0;
  int32_t compressed_size = 0;
  bool has_data_v1 = false, has_data_v2 = false, has_dictionary = false;
  int32_t num_values = 0;  // level entries (rows for a flat column), nulls included
  int32_t encoding = 0;    // of the values
  int32_t def_level_encoding = kRle;  // v1 only
  int32_t num_nulls = 0;              // v2 only
  int32_t num_rows = 0;               // v2 only
  int32_t def_levels_byte_length = 0; // v2 only
  int32_t rep_levels_byte_length = 0; // v2 only
  bool is_compressed = true;          // v2 only
  size_t header_size = 0;             // bytes the header itself took
};

// Decodes the page header at the start of [data, data + size) (the page body follows it).
PageHeader decode_page_header(const uint8_t* data, size_t size, const std::string& context);

}  // namespace cs::parquet
