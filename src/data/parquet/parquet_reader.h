// ParquetReader: a strict, streaming reader of flat Parquet files with string, integer, boolean
// and floating-point columns (what alpaca-style instruction corpora hold). It memory-maps the
// file, decodes the footer when it opens, and hands out rows one row group at a time, so memory
// follows the largest row group, never the file. Not a general Parquet library: nested columns,
// DELTA_* / BYTE_STREAM_SPLIT encodings and LZ4 / BROTLI / LZO codecs are cs::Errors naming the
// file, the column and the feature (src/data/parquet/README.md lists what is supported).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/file_io.h"
#include "data/parquet/parquet_metadata.h"

namespace cs {

namespace parquet {
struct ColumnValues;
struct RowSource;
}  // namespace parquet

// A leaf column of the file's (flat) schema.
struct ParquetColumn {
  std::string name;
  ParquetType type = ParquetType::kByteArray;
  bool optional = false;  // may hold nulls
};

// One row as for_each_row() hands it out: the wanted columns' values. Columns are addressed by
// their position in the wanted list (the file's column index when all columns were wanted) or by
// name; a null reads as std::nullopt. string() reads BYTE_ARRAY columns, int64() BOOLEAN (0/1),
// INT32 and INT64, float64() FLOAT and DOUBLE; another type is a cs::Error naming the column.
// String views stay valid only during the callback.
class ParquetRow {
 public:
  // The row's index in the file, counting from 0 across row groups.
  int64_t index() const { return index_; }
  // The number of wanted columns.
  size_t size() const;
  bool is_null(size_t col) const;
  std::optional<std::string_view> string(size_t col) const;
  std::optional<std::string_view> string(std::string_view name) const;
  std::optional<int64_t> int64(size_t col) const;
  std::optional<int64_t> int64(std::string_view name) const;
  std::optional<double> float64(size_t col) const;
  std::optional<double> float64(std::string_view name) const;

 private:
  friend class ParquetReader;
  explicit ParquetRow(const parquet::RowSource* src) : src_(src) {}
  size_t find(std::string_view name) const;
  // Column COL, checked to suit ACCESSOR ("string", "int64" or "float64").
  const parquet::ColumnValues& column(size_t col, const char* accessor) const;
  const parquet::RowSource* src_;
  size_t row_ = 0;  // within the current row group
  int64_t index_ = 0;
};

class ParquetReader {
 public:
  // Opens PATH and decodes and validates its footer and schema; throws cs::Error naming PATH for
  // a missing, truncated or corrupt file, and for nested columns (naming the column).
  explicit ParquetReader(const std::string& path);
  ~ParquetReader();
  ParquetReader(ParquetReader&&) noexcept;
  ParquetReader& operator=(ParquetReader&&) noexcept;

  const std::string& path() const { return file_.path(); }
  int64_t num_rows() const { return meta_.num_rows; }
  int64_t num_row_groups() const { return int64_t(meta_.row_groups.size()); }
  const std::vector<ParquetColumn>& columns() const { return columns_; }
  // The index of the column named NAME, or -1.
  int column_index(std::string_view name) const;

  // Streams the rows in file order, decoding WANTED_COLUMNS (all columns when empty) one row
  // group at a time, and calls FN for each row. Throws cs::Error for an unknown column name, an
  // unsupported column type, encoding or codec, and corrupt pages (naming the row group and
  // column); rows before the failing row group have already been handed out.
  void for_each_row(const std::vector<std::string>& wanted_columns,
                    const std::function<void(const ParquetRow&)>& fn) const;

 private:
  void check_schema();
  void check_row_groups();
  std::string where(const std::string& what) const;  // "[parquet] PATH: WHAT"

  MappedFile file_;
  size_t data_end_ = 0;  // the footer's first byte
  parquet::FileMeta meta_;
  std::vector<ParquetColumn> columns_;
};

}  // namespace cs
