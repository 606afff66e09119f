// Decoding of one column chunk (one column of one row group) into a value or a null per row:
// page headers, decompression, definition levels, PLAIN / dictionary / RLE-boolean values.
// Flat columns only (max definition level 0 or 1, no repetition levels). Strings are views into
// the mapped file (uncompressed pages) or into decompressed page buffers the result owns, so a
// result lives no longer than the mapping and holds memory proportional to its row group.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "data/parquet/parquet_metadata.h"

namespace cs::parquet {

// Values of one physical type; only the vector for that type is used.
struct ValueList {
  std::vector<std::string_view> strings;  // BYTE_ARRAY
  std::vector<int64_t> ints;              // BOOLEAN (0/1), INT32, INT64
  std::vector<double> doubles;            // FLOAT, DOUBLE
};

// One column of one row group, decoded.
struct ColumnValues {
  ParquetType type = ParquetType::kByteArray;
  std::vector<uint8_t> valid;  // per row: 1 a value, 0 a null
  ValueList values;            // per row (a null's slot holds an empty/zero value)
  std::vector<std::unique_ptr<uint8_t[]>> buffers;  // decompressed pages the strings point into
};

// Where a chunk is and how to read it.
struct ChunkSpec {
  const uint8_t* file = nullptr;  // the mapped file
  size_t data_end = 0;            // where the footer starts: no page may reach past it
  const ColumnChunkMeta* meta = nullptr;
  int64_t num_rows = 0;           // the row group's
  bool optional = false;          // definition levels present (max level 1)
  ParquetType type = ParquetType::kByteArray;
  std::string context;            // "[parquet] PATH: row group G, column 'NAME'"
};

// True for the physical types decode_column_chunk() handles.
bool parquet_type_supported(ParquetType type);

// Decodes the chunk SPEC describes into OUT (cleared first); throws cs::Error starting with
// SPEC.context on anything corrupt, truncated or unsupported (encoding, codec).
void decode_column_chunk(const ChunkSpec& spec, ColumnValues& out);

}  // namespace cs::parquet
