#include "data/corpus/record_source.h"

#include <fmt/core.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/file_io.h"
#include "data/corpus/json_records.h"
#include "data/corpus/message_text.h"
#include "data/parquet/parquet_reader.h"

namespace cs {

namespace fs = std::filesystem;

std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs) {
  std::vector<std::string> files;
  for (const auto& in : inputs) {
    std::error_code ec;
    if (fs::is_directory(in, ec)) {
      std::vector<std::string> found;
      for (const auto& e : fs::directory_iterator(in, ec)) {
        const std::string ext = e.path().extension().string();
        if (e.is_regular_file() && (ext == ".parquet" || ext == ".json" || ext == ".jsonl"))
          found.push_back(e.path().string());
      }
      if (ec) throw Error(fmt::format("--input {}: cannot list the directory: {}", in, ec.message()));
      if (found.empty())
        throw Error(fmt::format("--input {}: the directory holds no .parquet, .json or .jsonl file", in));
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else if (fs::exists(in, ec)) {
      require_regular_file(in, "preprocess", "--input takes files and directories");
      files.push_back(in);
    } else {
      // A missing file is a data error (exit 1), as in every command; usage errors (2) are flags.
      throw Error(fmt::format("--input {}: no such file or directory", in));
    }
  }
  if (files.empty()) throw UsageError("--input: no input given. Hint: --input FILE[,FILE...] or a directory");
  return files;
}

std::string record_origin(const std::vector<std::string>& files, const RawRecord& r) {
  const std::string& f = files.at(size_t(r.file));
  return r.parquet ? fmt::format("{} row {}", f, r.position) : fmt::format("{}:{}", f, r.position);
}

std::string record_too_large(const std::string& where, int64_t max_bytes) {
  // One record is one text for SentencePiece, whose memory grows with the text: about 200 bytes a
  // byte for a text without spaces (measured with the demo tokenizer: 0.85 GB for 4 MiB; a 50 MB
  // record took 12 GB), so a limit keeps one stray record from exhausting the machine.
  const std::string mib = max_bytes >= (1 << 20) ? fmt::format(" ({:.1f} MiB)", double(max_bytes) / (1 << 20)) : "";
  return fmt::format("[preprocess] {}: the record is longer than --max-record-bytes {}{}; one record is tokenized "
                     "as one text, and SentencePiece can need 200 times its size in memory. Hint: split such "
                     "texts into several records, or raise --max-record-bytes (e.g. --max-record-bytes 64MiB) "
                     "where the memory is there", where, max_bytes, mib);
}

namespace {

bool is_parquet(const std::string& path) {
  char magic[4] = {};
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;  // the JSON reader reports the open error
  const size_t n = std::fread(magic, 1, 4, f);
  std::fclose(f);
  return n == 4 && std::memcmp(magic, "PAR1", 4) == 0;
}

void read_parquet(const std::string& path, int32_t file, const std::vector<std::string>& columns,
                  const std::vector<std::string>& optional, int64_t& bytes, int64_t max_record_bytes,
                  const std::function<void(RawRecord&&)>& emit) {
  ParquetReader reader(path);
  std::vector<std::string> wanted;
  for (const auto& c : columns) {
    if (reader.column_index(c) >= 0) {
      wanted.push_back(c);
    } else if (std::find(optional.begin(), optional.end(), c) == optional.end()) {
      std::string have;
      for (const auto& col : reader.columns()) have += (have.empty() ? "" : ", ") + col.name;
      throw Error(fmt::format("[preprocess] {}: no column '{}' (the file has: {}). Hint: --json-keys names "
                              "the columns to tokenize; --handler-name alpaca reads instruction, input, output",
                              path, c, have));
    }
  }
  // Text columns only: a number column would otherwise fail on the first row with the reader's
  // message about its accessors, which says nothing about --json-keys.
  for (const auto& c : wanted) {
    const ParquetColumn& col = reader.columns()[size_t(reader.column_index(c))];
    if (col.type != ParquetType::kByteArray)
      throw Error(fmt::format("[preprocess] {}: column '{}' holds {} values, expected strings (BYTE_ARRAY). "
                              "Hint: --json-keys names the text columns to tokenize",
                              path, c, parquet_type_name(col.type)));
  }
  reader.for_each_row(wanted, [&](const ParquetRow& row) {
    RawRecord r;
    r.row = nlohmann::json::object();
    int64_t record_bytes = 0;
    for (size_t i = 0; i < wanted.size(); ++i) {
      const auto v = row.string(i);
      record_bytes += v ? int64_t(v->size()) : 0;
      if (max_record_bytes > 0 && record_bytes > max_record_bytes)
        throw Error(record_too_large(fmt::format("{} row {}", path, row.index() + 1), max_record_bytes));
      if (v) {
        bytes += int64_t(v->size());
        r.row[wanted[i]] = std::string(*v);
      } else {
        r.row[wanted[i]] = nullptr;
      }
    }
    r.parsed = true;
    r.parquet = true;
    r.file = file;
    r.position = row.index() + 1;
    emit(std::move(r));
  });
}

}  // namespace

void for_each_record(const std::vector<std::string>& files, const std::vector<std::string>& parquet_columns,
                     const std::vector<std::string>& optional_columns, int64_t& bytes, int64_t max_record_bytes,
                     const std::function<void(RawRecord&&)>& emit) {
  for (size_t f = 0; f < files.size(); ++f) {
    if (is_parquet(files[f])) {
      read_parquet(files[f], int32_t(f), parquet_columns, optional_columns, bytes, max_record_bytes, emit);
      continue;
    }
    JsonRecordReader reader(files[f], max_record_bytes);
    RawRecord r;
    int64_t before = 0;
    while (reader.next(r.json_text, r.position)) {
      bytes += reader.bytes_read() - before;
      before = reader.bytes_read();
      r.file = int32_t(f);
      r.parsed = false;
      emit(std::move(r));
      r = RawRecord{};
    }
    bytes += reader.bytes_read() - before;
  }
}

void parse_record(const std::vector<std::string>& files, RawRecord& r) {
  if (r.parsed) return;
  r.row = nlohmann::json::parse(r.json_text, nullptr, false);
  if (r.row.is_discarded()) {
    // Ask the parser again, with exceptions, only to name the position of the first error.
    std::string why;
    try {
      const auto again = nlohmann::json::parse(r.json_text);
      (void)again;
    } catch (const nlohmann::json::parse_error& e) {
      why = e.what();
    }
    // nlohmann quotes the whole token it last read (a string can be the whole record, raw bytes
    // and all); keep its tail, where the error is, escaped.
    const std::string tag = "; last read: '";
    const size_t at = why.rfind(tag);
    if (at != std::string::npos && why.back() == '\'') {
      const size_t from = at + tag.size();
      why = message_excerpt(why.substr(0, at), 300) + tag +
            message_excerpt(std::string_view(why).substr(from, why.size() - 1 - from), 40, true) + "'";
    } else {
      why = message_excerpt(why, 300);
    }
    throw Error(fmt::format("[preprocess] {}: not valid JSON ({}). Hint: each record must be one JSON object; "
                            "JSON Lines files hold one per line", record_origin(files, r), why));
  }
  r.parsed = true;
}

}  // namespace cs
