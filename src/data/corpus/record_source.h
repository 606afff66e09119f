// The inputs of `chuanspeed preprocess`, as one ordered stream of records: --input takes files
// and directories, comma-separated; a directory contributes its *.parquet, *.json and *.jsonl
// files in name order (not recursively). A file is Parquet when it starts with the magic "PAR1",
// otherwise JSON (a top-level array) or JSON Lines (see json_records.h).
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace cs {

// One record: raw JSON text (from JSON inputs; parsed later, in a worker) or the wanted columns
// of a Parquet row already as a JSON object.
struct RawRecord {
  std::string json_text;
  nlohmann::json row;  // set for Parquet rows
  bool parsed = false;
  bool parquet = false;  // a Parquet row (position is a row number)
  int32_t file = 0;      // index into the expanded input list
  int64_t position = 0;  // line (JSON) or row (Parquet), 1-based
};

// Expands --input into files, in order. Throws cs::UsageError for a missing path, a directory
// without inputs, or no input at all.
std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs);

// "FILE:LINE" or "FILE row N" for error messages.
std::string record_origin(const std::vector<std::string>& files, const RawRecord& r);

// The message for a record at WHERE longer than MAX_BYTES (--max-record-bytes).
std::string record_too_large(const std::string& where, int64_t max_bytes);

// Streams every record of FILES in order to EMIT. PARQUET_COLUMNS are read from Parquet files
// (OPTIONAL ones may be missing and then read as null). BYTES is advanced as input is consumed
// (file bytes for JSON, string bytes for Parquet). A record longer than MAX_RECORD_BYTES (0: no
// limit; JSON: its text, Parquet: its strings) is a cs::Error naming it. Throws cs::Error naming
// the file.
void for_each_record(const std::vector<std::string>& files, const std::vector<std::string>& parquet_columns,
                     const std::vector<std::string>& optional_columns, int64_t& bytes, int64_t max_record_bytes,
                     const std::function<void(RawRecord&&)>& emit);

// Parses a JSON record (RawRecord::json_text) into R.row, or throws cs::Error with the origin.
void parse_record(const std::vector<std::string>& files, RawRecord& r);

}  // namespace cs
