// Streaming JSON record reader for `chuanspeed preprocess`: a file is either a top-level JSON
// array of records (alpaca_data.json, FastChat's alpaca-data-conversation.json) or JSON Lines
// (one record per line, Megatron's preprocess_data.py input). Either way the file is read in
// fixed-size chunks and handed out one record's text at a time, so memory stays one chunk plus
// the largest record whatever the file size. Records are returned as raw JSON text: parsing them
// is left to the tokenizing workers, where it runs in parallel.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>

namespace cs {

class JsonRecordReader {
 public:
  // Opens PATH and looks at its first non-blank byte: '[' means a JSON array, anything else JSON
  // Lines. Throws cs::Error "[preprocess] PATH: ..." when it cannot be opened. A record longer
  // than MAX_RECORD_BYTES (0: no limit) is a cs::Error naming its line and number, thrown as soon
  // as the reader has read that much of it.
  explicit JsonRecordReader(const std::string& path, int64_t max_record_bytes = 0);
  ~JsonRecordReader();
  JsonRecordReader(const JsonRecordReader&) = delete;
  JsonRecordReader& operator=(const JsonRecordReader&) = delete;

  // The next record's JSON text and the line it starts on (1-based); false at the end of the
  // file. Structural errors (an unterminated array or string, text after the closing bracket,
  // a missing comma) throw cs::Error naming the file and line. The record's own JSON syntax is
  // checked later by the parser.
  bool next(std::string& text, int64_t& line);
  bool is_array() const { return array_; }
  const std::string& path() const { return path_; }
  // Bytes consumed so far (for MB/s).
  int64_t bytes_read() const { return consumed_; }

 private:
  int get();  // next byte or EOF, counting lines
  int peek();
  int skip_blank();  // skips whitespace, returns the next byte without consuming it
  [[noreturn]] void fail(int64_t line, const std::string& what) const;
  // Throws when TEXT has grown past the limit.
  void check_size(const std::string& text, int64_t line) const;
  bool next_line(std::string& text, int64_t& line);
  bool next_element(std::string& text, int64_t& line);

  std::string path_;
  std::FILE* f_ = nullptr;
  std::string buf_;
  size_t pos_ = 0, len_ = 0;
  int64_t line_ = 1, consumed_ = 0, records_ = 0, max_record_bytes_ = 0;
  bool array_ = false, done_ = false, first_ = true;
};

}  // namespace cs
