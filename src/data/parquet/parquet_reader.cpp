// ParquetReader: file framing (PAR1 ... footer, length, PAR1), schema and row-group validation at
// open, and the row-group-at-a-time loop of for_each_row(). Page-level work is in
// parquet_column.cpp; this file only decides which chunks to decode and hands out rows.
#include "data/parquet/parquet_reader.h"

#include <cstring>
#include <new>

#include "core/error.h"
#include "data/parquet/parquet_column.h"

namespace cs {

namespace parquet {
// What a ParquetRow reads from: the current row group's decoded wanted columns.
struct RowSource {
  const std::string* path = nullptr;
  std::vector<std::string> names;
  std::vector<ColumnValues> values;
};
}  // namespace parquet

namespace {
constexpr const char* kMagic = "PAR1";
constexpr const char* kCorruptHint =
    "Hint: the file is corrupt or truncated; copy or download it again";
}  // namespace

std::string ParquetReader::where(const std::string& what) const {
  return "[parquet] " + file_.path() + ": " + what;
}

ParquetReader::ParquetReader(const std::string& path)
    : file_(MappedFile::open(path, "parquet", "pass the path of a .parquet file")) {
  const uint8_t* d = file_.data();
  const size_t n = file_.size();
  if (n < 12)
    throw Error(where("file too short: got " + std::to_string(n) +
                      " bytes, expected at least 12 (PAR1, footer, length, PAR1). ") +
                kCorruptHint);
  if (std::memcmp(d, kMagic, 4) != 0)
    throw Error(where("bad magic: the file does not start with \"PAR1\". Hint: is it a Parquet "
                      "file? JSON and JSONL inputs have their own readers"));
  if (std::memcmp(d + n - 4, "PARE", 4) == 0)
    throw Error(where("encrypted footer (\"PARE\") is not supported. Hint: write the file "
                      "without Parquet modular encryption"));
  if (std::memcmp(d + n - 4, kMagic, 4) != 0)
    throw Error(where("bad magic: the file does not end with \"PAR1\" (is it truncated?). ") +
                kCorruptHint);
  uint32_t footer_len;
  std::memcpy(&footer_len, d + n - 8, 4);
  if (footer_len > n - 12)
    throw Error(where("footer length got " + std::to_string(footer_len) +
                      " bytes, expected at most " + std::to_string(n - 12) +
                      " (the file's size less 12). ") +
                kCorruptHint);
  data_end_ = n - 8 - footer_len;
  meta_ = parquet::decode_file_metadata(d + data_end_, footer_len, where("footer (FileMetaData)"));
  check_schema();
  check_row_groups();
}

ParquetReader::~ParquetReader() = default;
ParquetReader::ParquetReader(ParquetReader&&) noexcept = default;
ParquetReader& ParquetReader::operator=(ParquetReader&&) noexcept = default;

void ParquetReader::check_schema() {
  const auto& s = meta_.schema;
  if (s.empty()) throw Error(where("the schema is empty. ") + kCorruptHint);
  const int32_t k = s[0].num_children;
  if (k < 0 || size_t(k) > s.size() - 1)
    throw Error(where("the schema root has " + std::to_string(k) + " children, but the schema "
                      "lists " + std::to_string(s.size() - 1) + " elements after it. ") + kCorruptHint);
  for (size_t i = 1; i <= size_t(k); ++i) {
    const parquet::SchemaElement& e = s[i];
    if (e.num_children != 0 || !e.has_type || e.repetition == parquet::kRepeated)
      throw Error(where("column '" + e.name + "' is nested (" +
                        (e.repetition == parquet::kRepeated ? std::string("repeated")
                                                             : "a list, map or struct group") +
                        "); nested columns are not supported: the reader reads flat tables of "
                        "string and number columns. Hint: flatten or drop the column before "
                        "writing the file, e.g. with pyarrow's Table.flatten() or select()"));
    if (e.repetition != parquet::kRequired && e.repetition != parquet::kOptional)
      throw Error(where("column '" + e.name + "': repetition type got " +
                        std::to_string(e.repetition) + ", expected 0 (required) or 1 (optional). ") +
                  kCorruptHint);
    columns_.push_back({e.name, ParquetType(e.type), e.repetition == parquet::kOptional});
  }
  if (s.size() != size_t(k) + 1)
    throw Error(where("the schema lists " + std::to_string(s.size() - 1) +
                      " elements, expected the root's " + std::to_string(k) + " columns. ") +
                kCorruptHint);
}

void ParquetReader::check_row_groups() {
  int64_t rows = 0;
  for (size_t g = 0; g < meta_.row_groups.size(); ++g) {
    const parquet::RowGroupMeta& rg = meta_.row_groups[g];
    const std::string group = "row group " + std::to_string(g);
    if (rg.columns.size() != columns_.size())
      throw Error(where(group + " has " + std::to_string(rg.columns.size()) +
                        " column chunks, expected " + std::to_string(columns_.size()) + ". ") +
                  kCorruptHint);
    if (rg.num_rows < 0 || rg.num_rows > INT64_MAX - rows)
      throw Error(where(group + ": row count got " + std::to_string(rg.num_rows) + ". ") +
                  kCorruptHint);
    rows += rg.num_rows;
    for (size_t c = 0; c < columns_.size(); ++c) {
      const parquet::ColumnChunkMeta& m = rg.columns[c];
      const std::string col = group + ", column '" + columns_[c].name + "'";
      if (m.has_file_path)
        throw Error(where(col + ": data in another file (ColumnChunk.file_path) is not "
                          "supported. Hint: write the table into one file"));
      if (m.type != int32_t(columns_[c].type))
        throw Error(where(col + ": chunk type " + parquet_type_name(ParquetType(m.type)) +
                          " differs from the schema's " + parquet_type_name(columns_[c].type) +
                          ". ") + kCorruptHint);
      if (m.path_in_schema.size() != 1 || m.path_in_schema[0] != columns_[c].name)
        throw Error(where(col + ": the chunk's path_in_schema does not name the column. ") +
                    kCorruptHint);
    }
  }
  if (rows != meta_.num_rows)
    throw Error(where("the row groups hold " + std::to_string(rows) + " rows, the footer says " +
                      std::to_string(meta_.num_rows) + ". ") + kCorruptHint);
}

int ParquetReader::column_index(std::string_view name) const {
  for (size_t i = 0; i < columns_.size(); ++i)
    if (columns_[i].name == name) return int(i);
  return -1;
}

void ParquetReader::for_each_row(const std::vector<std::string>& wanted_columns,
                                 const std::function<void(const ParquetRow&)>& fn) const {
  std::vector<size_t> wanted;
  parquet::RowSource src;
  src.path = &file_.path();
  if (wanted_columns.empty()) {
    for (size_t i = 0; i < columns_.size(); ++i) wanted.push_back(i);
  } else {
    for (const std::string& name : wanted_columns) {
      int i = column_index(name);
      if (i < 0) {
        std::string have;
        for (const ParquetColumn& c : columns_) have += (have.empty() ? "" : ", ") + c.name;
        throw Error(where("no column named '" + name + "': the file has " + have +
                          ". Hint: check the column name (--json-keys)"), 2);
      }
      wanted.push_back(size_t(i));
    }
  }
  for (size_t i : wanted) {
    if (!parquet::parquet_type_supported(columns_[i].type))
      throw Error(where("column '" + columns_[i].name + "': physical type " +
                        parquet_type_name(columns_[i].type) + " is not supported. Hint: "
                        "the reader handles BYTE_ARRAY, BOOLEAN, INT32, INT64, FLOAT and DOUBLE; "
                        "leave this column out of the wanted columns"));
    src.names.push_back(columns_[i].name);
  }
  src.values.resize(wanted.size());
  ParquetRow row(&src);
  int64_t first = 0;
  for (size_t g = 0; g < meta_.row_groups.size(); ++g) {
    const parquet::RowGroupMeta& rg = meta_.row_groups[g];
    for (size_t j = 0; j < wanted.size(); ++j) {
      const size_t c = wanted[j];
      parquet::ChunkSpec spec{file_.data(), data_end_, &rg.columns[c], rg.num_rows,
                              columns_[c].optional, columns_[c].type,
                              where("row group " + std::to_string(g) + ", column '" +
                                    columns_[c].name + "'")};
      try {
        parquet::decode_column_chunk(spec, src.values[j]);
      } catch (const std::bad_alloc&) {
        throw Error(spec.context + ": out of memory decoding " + std::to_string(rg.num_rows) +
                    " rows. Hint: the file is corrupt, or its row groups are too large; rewrite "
                    "it with a smaller row_group_size");
      }
    }
    for (int64_t r = 0; r < rg.num_rows; ++r) {
      row.row_ = size_t(r);
      row.index_ = first + r;
      fn(row);
    }
    first += rg.num_rows;
  }
}

// ---- ParquetRow ----

size_t ParquetRow::size() const { return src_->names.size(); }

size_t ParquetRow::find(std::string_view name) const {
  for (size_t i = 0; i < src_->names.size(); ++i)
    if (src_->names[i] == name) return i;
  throw Error("[parquet] " + *src_->path + ": column '" + std::string(name) +
              "' was not among the wanted columns. Hint: add it to for_each_row()'s list");
}

const parquet::ColumnValues& ParquetRow::column(size_t col, const char* accessor) const {
  CS_CHECK(col < src_->values.size()) << "column " << col << " of " << src_->values.size();
  const parquet::ColumnValues& v = src_->values[col];
  const ParquetType t = v.type;
  const bool ok = accessor[0] == 's'   ? t == ParquetType::kByteArray
                  : accessor[0] == 'f' ? t == ParquetType::kFloat || t == ParquetType::kDouble
                                       : t == ParquetType::kBoolean || t == ParquetType::kInt32 ||
                                             t == ParquetType::kInt64;
  if (!ok)
    throw Error("[parquet] " + *src_->path + ": column '" + src_->names[col] + "' is " +
                parquet_type_name(t) + ", read with " + accessor + "(). Hint: string() reads "
                "BYTE_ARRAY, int64() BOOLEAN/INT32/INT64, float64() FLOAT/DOUBLE");
  return v;
}

bool ParquetRow::is_null(size_t col) const {
  CS_CHECK(col < src_->values.size()) << "column " << col << " of " << src_->values.size();
  return !src_->values[col].valid[row_];
}

std::optional<std::string_view> ParquetRow::string(size_t col) const {
  const parquet::ColumnValues& v = column(col, "string");
  if (!v.valid[row_]) return std::nullopt;
  return v.values.strings[row_];
}

std::optional<int64_t> ParquetRow::int64(size_t col) const {
  const parquet::ColumnValues& v = column(col, "int64");
  if (!v.valid[row_]) return std::nullopt;
  return v.values.ints[row_];
}

std::optional<double> ParquetRow::float64(size_t col) const {
  const parquet::ColumnValues& v = column(col, "float64");
  if (!v.valid[row_]) return std::nullopt;
  return v.values.doubles[row_];
}

std::optional<std::string_view> ParquetRow::string(std::string_view name) const {
  return string(find(name));
}
std::optional<int64_t> ParquetRow::int64(std::string_view name) const { return int64(find(name)); }
std::optional<double> ParquetRow::float64(std::string_view name) const {
  return float64(find(name));
}

}  // namespace cs
