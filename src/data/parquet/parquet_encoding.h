// Parquet value encodings the reader supports: PLAIN for BOOLEAN, INT32, INT64, FLOAT, DOUBLE
// and BYTE_ARRAY, and the RLE / bit-packed hybrid (definition levels, dictionary indices,
// RLE booleans). Pure functions over a byte range: every read is checked against its end, and a
// short or malformed range is a cs::Error starting with the caller's context.
// Spec: apache/parquet-format, Encodings.md.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "data/parquet/parquet_column.h"

namespace cs::parquet {

// Decodes COUNT values of BIT_WIDTH bits (0..32) from the hybrid stream [data, data + size),
// appending them to OUT. The stream may hold more values than COUNT (the rest are ignored) and
// its final bit-packed run may be cut short after the last needed value. WHAT names the stream
// in errors ("definition levels", "dictionary indices").
void decode_rle_hybrid(const uint8_t* data, size_t size, int bit_width, size_t count,
                       std::vector<uint32_t>& out, const std::string& context, const char* what);

// Decodes COUNT PLAIN values of TYPE from [data, data + size), appending them to OUT.
// BYTE_ARRAY values are views into [data, data + size). Returns the bytes consumed.
size_t decode_plain(ParquetType type, const uint8_t* data, size_t size, size_t count,
                    ValueList& out, const std::string& context);

// Reads the 4-byte little-endian length that prefixes v1 definition levels and RLE booleans,
// checked against SIZE.
uint32_t read_length_prefix(const uint8_t* data, size_t size, const std::string& context,
                            const char* what);

}  // namespace cs::parquet
