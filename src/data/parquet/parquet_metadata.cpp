// FileMetaData and PageHeader decoding: one function per Thrift struct, each reading the fields it
// knows, skipping the rest (key_value_metadata, statistics, indexes, encryption ...) and checking
// that its required fields were present.
#include "data/parquet/parquet_metadata.h"

#include <functional>

#include "data/parquet/thrift_compact.h"

namespace cs {

std::string parquet_type_name(ParquetType type) {
  static const char* const kNames[] = {"BOOLEAN", "INT32",  "INT64",      "INT96",
                                       "FLOAT",   "DOUBLE", "BYTE_ARRAY", "FIXED_LEN_BYTE_ARRAY"};
  int32_t t = int32_t(type);
  return t >= 0 && t < 8 ? kNames[t] : "type " + std::to_string(t);
}

}  // namespace cs

namespace cs::parquet {

namespace {

using Reader = ThriftCompactReader;

std::string enum_name(int32_t v, const char* const* names, int32_t n) {
  if (v >= 0 && v < n && names[v][0]) return names[v];
  return std::to_string(v) + " (unknown)";
}

// Reads struct NAME: calls FIELD for each field header; FIELD returns false to have it skipped.
void read_struct(Reader& r, const char* name, const std::function<bool(const ThriftField&)>& field) {
  r.struct_begin(name);
  for (;;) {
    ThriftField f = r.field_begin();
    if (f.type == kThriftStop) break;
    if (!field(f)) r.skip(f.type);
  }
  r.struct_end();
}

void require(Reader& r, bool seen, const char* what) {
  if (!seen) r.fail(std::string("missing required field ") + what);
}

SchemaElement read_schema_element(Reader& r) {
  SchemaElement e;
  bool has_name = false;
  read_struct(r, "SchemaElement", [&](const ThriftField& f) {
    switch (f.id) {
      case 1: e.has_type = true; e.type = r.read_i32(f); return true;
      case 3: e.repetition = r.read_i32(f); return true;
      case 4: e.name = std::string(r.read_binary(f)); has_name = true; return true;
      case 5: e.num_children = r.read_i32(f); return true;
      default: return false;
    }
  });
  require(r, has_name, "SchemaElement.name");
  return e;
}

ColumnChunkMeta read_column_meta(Reader& r, ColumnChunkMeta c) {
  uint32_t seen = 0;
  read_struct(r, "ColumnMetaData", [&](const ThriftField& f) {
    switch (f.id) {
      case 1: c.type = r.read_i32(f); break;
      case 2: {
        ThriftList l = r.read_list(f, kThriftI32);
        for (size_t i = 0; i < l.size; ++i) c.encodings.push_back(r.read_i32_elem());
        break;
      }
      case 3: {
        ThriftList l = r.read_list(f, kThriftBinary);
        for (size_t i = 0; i < l.size; ++i) c.path_in_schema.emplace_back(r.read_binary_elem());
        break;
      }
      case 4: c.codec = r.read_i32(f); break;
      case 5: c.num_values = r.read_i64(f); break;
      case 6: c.total_uncompressed_size = r.read_i64(f); break;
      case 7: c.total_compressed_size = r.read_i64(f); break;
      case 9: c.data_page_offset = r.read_i64(f); break;
      case 11: c.dictionary_page_offset = r.read_i64(f); break;
      default: return false;
    }
    seen |= 1u << f.id;
    return true;
  });
  const char* const kRequired[] = {"",   "type", "encodings", "path_in_schema", "codec",
                                   "num_values", "total_uncompressed_size",
                                   "total_compressed_size", "", "data_page_offset"};
  for (int id : {1, 2, 3, 4, 5, 6, 7, 9})
    require(r, seen & (1u << id), (std::string("ColumnMetaData.") + kRequired[id]).c_str());
  return c;
}

ColumnChunkMeta read_column_chunk(Reader& r) {
  ColumnChunkMeta c;
  bool has_meta = false;
  read_struct(r, "ColumnChunk", [&](const ThriftField& f) {
    switch (f.id) {
      case 1: r.read_binary(f); c.has_file_path = true; return true;
      case 3: c = read_column_meta(r, c); has_meta = true; return true;
      default: return false;
    }
  });
  require(r, has_meta, "ColumnChunk.meta_data (is the file encrypted?)");
  return c;
}

RowGroupMeta read_row_group(Reader& r) {
  RowGroupMeta g;
  bool has_columns = false, has_rows = false;
  read_struct(r, "RowGroup", [&](const ThriftField& f) {
    switch (f.id) {
      case 1: {
        ThriftList l = r.read_list(f, kThriftStruct);
        for (size_t i = 0; i < l.size; ++i) g.columns.push_back(read_column_chunk(r));
        has_columns = true;
        return true;
      }
      case 3: g.num_rows = r.read_i64(f); has_rows = true; return true;
      default: return false;
    }
  });
  require(r, has_columns, "RowGroup.columns");
  require(r, has_rows, "RowGroup.num_rows");
  return g;
}

}  // namespace

std::string codec_name(int32_t codec) {
  static const char* const kNames[] = {"UNCOMPRESSED", "SNAPPY", "GZIP", "LZO",
                                       "BROTLI",       "LZ4",    "ZSTD", "LZ4_RAW"};
  return enum_name(codec, kNames, 8);
}

std::string encoding_name(int32_t encoding) {
  static const char* const kNames[] = {"PLAIN",
                                       "",
                                       "PLAIN_DICTIONARY",
                                       "RLE",
                                       "BIT_PACKED",
                                       "DELTA_BINARY_PACKED",
                                       "DELTA_LENGTH_BYTE_ARRAY",
                                       "DELTA_BYTE_ARRAY",
                                       "RLE_DICTIONARY",
                                       "BYTE_STREAM_SPLIT"};
  return enum_name(encoding, kNames, 10);
}

FileMeta decode_file_metadata(const uint8_t* data, size_t size, const std::string& context) {
  Reader r(data, size, context);
  FileMeta m;
  bool has_version = false, has_schema = false, has_rows = false, has_groups = false;
  read_struct(r, "FileMetaData", [&](const ThriftField& f) {
    switch (f.id) {
      case 1: m.version = r.read_i32(f); has_version = true; return true;
      case 2: {
        ThriftList l = r.read_list(f, kThriftStruct);
        for (size_t i = 0; i < l.size; ++i) m.schema.push_back(read_schema_element(r));
        has_schema = true;
        return true;
      }
      case 3: m.num_rows = r.read_i64(f); has_rows = true; return true;
      case 4: {
        ThriftList l = r.read_list(f, kThriftStruct);
        for (size_t i = 0; i < l.size; ++i) m.row_groups.push_back(read_row_group(r));
        has_groups = true;
        return true;
      }
      default: return false;  // key_value_metadata, created_by, column_orders, ...
    }
  });
  require(r, has_version, "FileMetaData.version");
  require(r, has_schema, "FileMetaData.schema");
  require(r, has_rows, "FileMetaData.num_rows");
  require(r, has_groups, "FileMetaData.row_groups");
  return m;
}

PageHeader decode_page_header(const uint8_t* data, size_t size, const std::string& context) {
  Reader r(data, size, context);
  PageHeader h;
  uint32_t seen = 0;
  read_struct(r, "PageHeader", [&](const ThriftField& f) {
    switch (f.id) {
      case 1: h.type = r.read_i32(f); break;
      case 2: h.uncompressed_size = r.read_i32(f); break;
      case 3: h.compressed_size = r.read_i32(f); break;
      case 5:  // DataPageHeader
        h.has_data_v1 = true;
        read_struct(r, "DataPageHeader", [&](const ThriftField& g) {
          switch (g.id) {
            case 1: h.num_values = r.read_i32(g); return true;
            case 2: h.encoding = r.read_i32(g); return true;
            case 3: h.def_level_encoding = r.read_i32(g); return true;
            default: return false;  // repetition_level_encoding (no levels: flat), statistics
          }
        });
        break;
      case 7:  // DictionaryPageHeader
        h.has_dictionary = true;
        read_struct(r, "DictionaryPageHeader", [&](const ThriftField& g) {
          switch (g.id) {
            case 1: h.num_values = r.read_i32(g); return true;
            case 2: h.encoding = r.read_i32(g); return true;
            default: return false;
          }
        });
        break;
      case 8:  // DataPageHeaderV2
        h.has_data_v2 = true;
        read_struct(r, "DataPageHeaderV2", [&](const ThriftField& g) {
          switch (g.id) {
            case 1: h.num_values = r.read_i32(g); return true;
            case 2: h.num_nulls = r.read_i32(g); return true;
            case 3: h.num_rows = r.read_i32(g); return true;
            case 4: h.encoding = r.read_i32(g); return true;
            case 5: h.def_levels_byte_length = r.read_i32(g); return true;
            case 6: h.rep_levels_byte_length = r.read_i32(g); return true;
            case 7: h.is_compressed = r.read_bool(g); return true;
            default: return false;
          }
        });
        break;
      default: return false;  // crc, index page header
    }
    seen |= 1u << f.id;
    return true;
  });
  require(r, seen & 2, "PageHeader.type");
  require(r, seen & 4, "PageHeader.uncompressed_page_size");
  require(r, seen & 8, "PageHeader.compressed_page_size");
  h.header_size = r.position();
  return h;
}

}  // namespace cs::parquet
