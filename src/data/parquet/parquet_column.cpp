// Column chunk decoding: walks the chunk's pages in order (an optional dictionary page first),
// checks each header against the chunk's bounds before touching its body, decompresses, decodes
// the definition levels and the non-null values, and scatters them into one slot per row.
#include "data/parquet/parquet_column.h"

#include "core/error.h"
#include "data/parquet/parquet_codec.h"
#include "data/parquet/parquet_encoding.h"

namespace cs::parquet {

namespace {

constexpr const char* kCorrupt = "Hint: the file is corrupt or truncated";

[[noreturn]] void fail(const std::string& context, const std::string& what,
                       const char* hint = kCorrupt) {
  throw Error(context + ": " + what + ". " + hint);
}

// An encoding or codec Parquet defines but this reader does not handle; a value Parquet does not
// define at all ("N (unknown)") is corruption instead.
[[noreturn]] void refuse(const std::string& context, const std::string& what) {
  if (what.find("(unknown)") != std::string::npos) fail(context, what);
  fail(context, what + " is not supported",
       "Hint: the reader handles PLAIN and dictionary encodings and UNCOMPRESSED, SNAPPY, GZIP "
       "and ZSTD; rewrite the file with those, e.g. pyarrow.parquet.write_table(t, path, "
       "compression='zstd', column_encoding=None)");
}

size_t value_count(const ValueList& v, ParquetType type) {
  if (type == ParquetType::kByteArray) return v.strings.size();
  if (type == ParquetType::kFloat || type == ParquetType::kDouble) return v.doubles.size();
  return v.ints.size();
}

// The state of one chunk's decoding.
class ChunkDecoder {
 public:
  ChunkDecoder(const ChunkSpec& spec, ColumnValues& out) : s_(spec), out_(out) {}

  void run();

 private:
  // The page body [data, data + size) after decompression, kept alive in out_.buffers when
  // string views may point into it.
  const uint8_t* body(const PageHeader& h, const uint8_t* data, size_t size, size_t raw_size,
                      bool compressed, const std::string& ctx);
  void dictionary_page(const PageHeader& h, const uint8_t* data, const std::string& ctx);
  void data_page(const PageHeader& h, const uint8_t* data, const std::string& ctx);
  void values(int32_t encoding, const uint8_t* data, size_t size, size_t count,
              const std::string& ctx);

  const ChunkSpec& s_;
  ColumnValues& out_;
  ValueList dict_;
  bool has_dict_ = false;
  bool seen_data_ = false;
  std::vector<uint32_t> levels_, indices_;
  ValueList page_;  // the current page's non-null values
};

const uint8_t* ChunkDecoder::body(const PageHeader& h, const uint8_t* data, size_t size,
                                  size_t raw_size, bool compressed, const std::string& ctx) {
  if (!compressed || s_.meta->codec == kUncompressed) {
    if (size != raw_size)
      fail(ctx, "uncompressed page body of " + std::to_string(size) + " bytes, header says " +
                    std::to_string(raw_size));
    return data;
  }
  if (raw_size > size_t(s_.meta->total_uncompressed_size))
    fail(ctx, "uncompressed page size " + std::to_string(raw_size) +
                  " exceeds the column chunk's total_uncompressed_size " +
                  std::to_string(s_.meta->total_uncompressed_size));
  out_.buffers.push_back(decompress(s_.meta->codec, data, size, raw_size, ctx));
  return out_.buffers.back().get();
}

void ChunkDecoder::run() {
  const ColumnChunkMeta& m = *s_.meta;
  if (!codec_supported(m.codec)) refuse(s_.context, "compression codec " + codec_name(m.codec));
  if (m.num_values != s_.num_rows)
    fail(s_.context, "column chunk holds " + std::to_string(m.num_values) +
                         " values, expected the row group's " + std::to_string(s_.num_rows) +
                         " rows");
  int64_t start = m.data_page_offset;
  if (m.dictionary_page_offset > 0 && m.dictionary_page_offset < start)
    start = m.dictionary_page_offset;
  const int64_t data_end = int64_t(s_.data_end);
  if (start < 4 || m.total_compressed_size < 0 || start > data_end ||
      m.total_compressed_size > data_end - start)
    fail(s_.context, "column chunk at byte " + std::to_string(start) + " of " +
                         std::to_string(m.total_compressed_size) +
                         " bytes lies outside the file's data [4, " + std::to_string(data_end) +
                         ")");
  const size_t end = size_t(start + m.total_compressed_size);
  size_t pos = size_t(start);
  while (value_count(out_.values, s_.type) < size_t(s_.num_rows)) {
    const std::string ctx = s_.context + ", page at byte " + std::to_string(pos);
    if (pos >= end)
      fail(ctx, "the column chunk ends after " +
                    std::to_string(value_count(out_.values, s_.type)) + " of " +
                    std::to_string(s_.num_rows) + " values");
    PageHeader h = decode_page_header(s_.file + pos, end - pos, ctx + ": page header");
    if (h.compressed_size < 0 || h.uncompressed_size < 0)
      fail(ctx, "negative page size (compressed " + std::to_string(h.compressed_size) +
                    ", uncompressed " + std::to_string(h.uncompressed_size) + ")");
    const uint8_t* data = s_.file + pos + h.header_size;
    if (size_t(h.compressed_size) > end - pos - h.header_size)
      fail(ctx, "page of " + std::to_string(h.compressed_size) + " bytes runs past the column "
                    "chunk's end at byte " + std::to_string(end));
    if (h.type == kDictionaryPage)
      dictionary_page(h, data, ctx);
    else if (h.type == kDataPage || h.type == kDataPageV2)
      data_page(h, data, ctx);
    else if (h.type != kIndexPage)
      fail(ctx, "unknown page type " + std::to_string(h.type));
    pos += h.header_size + size_t(h.compressed_size);
  }
}

void ChunkDecoder::dictionary_page(const PageHeader& h, const uint8_t* data,
                                   const std::string& ctx) {
  if (!h.has_dictionary) fail(ctx, "dictionary page without a DictionaryPageHeader");
  if (has_dict_ || seen_data_) fail(ctx, "a second dictionary page, or one after data pages");
  if (h.encoding != kPlain && h.encoding != kPlainDictionary)
    refuse(ctx, "dictionary page encoding " + encoding_name(h.encoding));
  if (h.num_values < 0) fail(ctx, "negative dictionary size " + std::to_string(h.num_values));
  const uint8_t* p = body(h, data, size_t(h.compressed_size), size_t(h.uncompressed_size), true, ctx);
  decode_plain(s_.type, p, size_t(h.uncompressed_size), size_t(h.num_values), dict_, ctx);
  has_dict_ = true;
}

void ChunkDecoder::data_page(const PageHeader& h, const uint8_t* data, const std::string& ctx) {
  const bool v2 = h.type == kDataPageV2;
  if (v2 ? !h.has_data_v2 : !h.has_data_v1)
    fail(ctx, std::string("data page without a ") + (v2 ? "DataPageHeaderV2" : "DataPageHeader"));
  seen_data_ = true;
  const size_t rows_done = value_count(out_.values, s_.type);
  if (h.num_values < 0 || size_t(h.num_values) > size_t(s_.num_rows) - rows_done)
    fail(ctx, "page holds " + std::to_string(h.num_values) + " values, but only " +
                  std::to_string(size_t(s_.num_rows) - rows_done) + " rows of the row group are left");
  const size_t n = size_t(h.num_values);
  const uint8_t* vals = nullptr;
  size_t vals_size = 0;
  levels_.clear();
  if (!v2) {  // levels and values are compressed together
    const uint8_t* p = body(h, data, size_t(h.compressed_size), size_t(h.uncompressed_size), true, ctx);
    size_t size = size_t(h.uncompressed_size), skip = 0;
    if (s_.optional) {
      if (h.def_level_encoding != kRle)
        refuse(ctx, "definition level encoding " + encoding_name(h.def_level_encoding));
      uint32_t len = read_length_prefix(p, size, ctx, "definition levels");
      decode_rle_hybrid(p + 4, len, 1, n, levels_, ctx, "definition levels");
      skip = 4 + size_t(len);
    }
    vals = p + skip;
    vals_size = size - skip;
  } else {  // levels uncompressed up front, with explicit lengths; then the values
    int64_t rep = h.rep_levels_byte_length, def = h.def_levels_byte_length;
    if (rep < 0 || def < 0 || rep + def > h.compressed_size || rep + def > h.uncompressed_size)
      fail(ctx, "level lengths (repetition " + std::to_string(rep) + ", definition " +
                    std::to_string(def) + ") exceed the page size " + std::to_string(h.compressed_size));
    if (s_.optional) decode_rle_hybrid(data + rep, size_t(def), 1, n, levels_, ctx, "definition levels");
    size_t skip = size_t(rep + def);
    vals = body(h, data + skip, size_t(h.compressed_size) - skip,
                size_t(h.uncompressed_size) - skip, h.is_compressed, ctx);
    vals_size = size_t(h.uncompressed_size) - skip;
  }
  size_t non_null = n;
  if (s_.optional) {
    non_null = 0;
    for (uint32_t l : levels_) {
      if (l > 1) fail(ctx, "definition level " + std::to_string(l) + ", expected 0 or 1");
      non_null += l;
    }
  }
  if (v2 && (h.num_nulls != int32_t(n - non_null) || h.num_rows != h.num_values))
    fail(ctx, "DataPageHeaderV2 says " + std::to_string(h.num_nulls) + " nulls in " +
                  std::to_string(h.num_rows) + " rows, the levels say " +
                  std::to_string(n - non_null) + " in " + std::to_string(n));
  page_ = ValueList();
  values(h.encoding, vals, vals_size, non_null, ctx);
  // Scatter: one slot per row, nulls get an empty/zero value.
  size_t k = 0;
  for (size_t i = 0; i < n; ++i) {
    bool valid = !s_.optional || levels_[i];
    out_.valid.push_back(valid);
    switch (s_.type) {
      case ParquetType::kByteArray: out_.values.strings.push_back(valid ? page_.strings[k] : ""); break;
      case ParquetType::kFloat:
      case ParquetType::kDouble: out_.values.doubles.push_back(valid ? page_.doubles[k] : 0.0); break;
      default: out_.values.ints.push_back(valid ? page_.ints[k] : 0); break;
    }
    k += valid;
  }
}

void ChunkDecoder::values(int32_t encoding, const uint8_t* data, size_t size, size_t count,
                          const std::string& ctx) {
  if (encoding == kPlain) {
    decode_plain(s_.type, data, size, count, page_, ctx);
  } else if (encoding == kRleDictionary || encoding == kPlainDictionary) {
    if (!has_dict_) fail(ctx, encoding_name(encoding) + " page without a dictionary page before it");
    if (count == 0) return;
    if (size < 1) fail(ctx, "dictionary indices: the bit-width byte runs past the page end");
    indices_.clear();
    decode_rle_hybrid(data + 1, size - 1, data[0], count, indices_, ctx, "dictionary indices");
    const size_t dict_size = value_count(dict_, s_.type);
    for (uint32_t i : indices_) {
      if (i >= dict_size)
        fail(ctx, "dictionary index " + std::to_string(i) + " out of range: the dictionary has " +
                      std::to_string(dict_size) + " values");
      switch (s_.type) {
        case ParquetType::kByteArray: page_.strings.push_back(dict_.strings[i]); break;
        case ParquetType::kFloat:
        case ParquetType::kDouble: page_.doubles.push_back(dict_.doubles[i]); break;
        default: page_.ints.push_back(dict_.ints[i]); break;
      }
    }
  } else if (encoding == kRle && s_.type == ParquetType::kBoolean) {
    uint32_t len = read_length_prefix(data, size, ctx, "RLE booleans");
    indices_.clear();
    decode_rle_hybrid(data + 4, len, 1, count, indices_, ctx, "RLE booleans");
    page_.ints.assign(indices_.begin(), indices_.end());
  } else {
    refuse(ctx, "encoding " + encoding_name(encoding) + " for " + parquet_type_name(s_.type));
  }
}

}  // namespace

bool parquet_type_supported(ParquetType type) {
  return type != ParquetType::kInt96 && type != ParquetType::kFixedLenByteArray &&
         int32_t(type) >= 0 && int32_t(type) <= 7;
}

void decode_column_chunk(const ChunkSpec& spec, ColumnValues& out) {
  CS_CHECK(spec.meta && spec.file) << spec.context;
  out.type = spec.type;
  out.valid.clear();
  out.values = ValueList();
  out.buffers.clear();
  ChunkDecoder(spec, out).run();
}

}  // namespace cs::parquet
