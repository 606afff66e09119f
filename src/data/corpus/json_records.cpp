#include "data/corpus/json_records.h"

#include <fmt/core.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"
#include "core/file_io.h"
#include "data/corpus/message_text.h"
#include "data/corpus/record_source.h"

namespace cs {

namespace {
constexpr size_t kChunk = 1 << 20;
bool blank(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
}  // namespace

JsonRecordReader::JsonRecordReader(const std::string& path, int64_t max_record_bytes)
    : path_(path), buf_(kChunk, '\0'), max_record_bytes_(max_record_bytes) {
  require_regular_file(path, "preprocess", "--input takes files and directories");
  f_ = std::fopen(path.c_str(), "rb");
  if (!f_)
    throw Error(fmt::format("[preprocess] {}: cannot open: {}. Hint: check --input", path, std::strerror(errno)));
  // A UTF-8 byte order mark is not JSON, but editors write it; skip it.
  if (peek() == 0xEF) {
    get();
    if (get() != 0xBB || get() != 0xBF) fail(1, "starts with a byte that is neither JSON nor a UTF-8 byte order mark");
  }
  const int c = skip_blank();
  if (c == EOF) {
    done_ = true;  // an empty file holds no records
  } else if (c == '[') {
    get();
    array_ = true;
    if (skip_blank() == ']') {
      get();
      if (skip_blank() != EOF) fail(line_, "text after the closing ] of the top-level array");
      done_ = true;
    }
  }
}

JsonRecordReader::~JsonRecordReader() {
  if (f_) std::fclose(f_);
}

void JsonRecordReader::fail(int64_t line, const std::string& what) const {
  throw Error(fmt::format("[preprocess] {}:{}: {}. Hint: the input must be a JSON array of records "
                          "or JSON Lines (one record per line)", path_, line, what));
}

void JsonRecordReader::check_size(const std::string& text, int64_t line) const {
  if (max_record_bytes_ > 0 && int64_t(text.size()) > max_record_bytes_)
    throw Error(record_too_large(fmt::format("{}:{} (record {})", path_, line, records_ + 1), max_record_bytes_));
}

int JsonRecordReader::peek() {
  if (pos_ == len_) {
    len_ = std::fread(buf_.data(), 1, buf_.size(), f_);
    pos_ = 0;
    if (len_ == 0) {
      if (std::ferror(f_)) fail(line_, fmt::format("read error: {}", std::strerror(errno)));
      return EOF;
    }
  }
  return static_cast<unsigned char>(buf_[pos_]);
}

int JsonRecordReader::get() {
  const int c = peek();
  if (c == EOF) return EOF;
  ++pos_;
  ++consumed_;
  if (c == '\n') ++line_;
  return c;
}

int JsonRecordReader::skip_blank() {
  int c;
  while ((c = peek()) != EOF && blank(c)) get();
  return c;
}

bool JsonRecordReader::next(std::string& text, int64_t& line) {
  if (done_) return false;
  const bool got = array_ ? next_element(text, line) : next_line(text, line);
  records_ += got;
  return got;
}

bool JsonRecordReader::next_line(std::string& text, int64_t& line) {
  for (;;) {
    text.clear();
    line = line_;
    bool any = false;
    for (;;) {
      if (peek() == EOF) break;
      // Copy up to the newline in one piece (memchr), not byte by byte.
      const char* start = buf_.data() + pos_;
      const void* nl = std::memchr(start, '\n', len_ - pos_);
      const size_t n = nl ? size_t(static_cast<const char*>(nl) - start) : len_ - pos_;
      text.append(start, n);
      pos_ += n;
      consumed_ += int64_t(n);
      any = true;
      check_size(text, line);
      if (nl) {
        get();
        break;
      }
    }
    if (!any && peek() == EOF) {
      done_ = true;
      return false;
    }
    if (!text.empty() && text.back() == '\r') text.pop_back();
    size_t i = 0;
    while (i < text.size() && blank(static_cast<unsigned char>(text[i]))) ++i;
    if (i < text.size()) return true;  // blank lines between records are skipped
    if (peek() == EOF) {
      done_ = true;
      return false;
    }
  }
}

bool JsonRecordReader::next_element(std::string& text, int64_t& line) {
  text.clear();
  int c = skip_blank();
  line = line_;
  if (c == EOF) fail(line_, "the top-level array is not closed (missing ])");
  if (c == ',' || c == ']') fail(line_, fmt::format("expected a record, found '{}'", message_excerpt(std::string(1, char(c)))));
  int depth = 0;
  bool in_string = false;
  for (;;) {
    c = peek();
    if (c == EOF) fail(line, in_string ? "a string in this record is not terminated" : "this record is not closed");
    if ((text.size() & 0xffff) == 0) check_size(text, line);  // now and then: a byte loop
    if (in_string) {
      text.push_back(char(get()));
      if (c == '\\') {
        const int e = get();
        if (e == EOF) fail(line, "a string in this record is not terminated");
        text.push_back(char(e));
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if ((c == ',' || c == ']') && depth == 0) break;  // the end of a scalar element
    text.push_back(char(get()));
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (--depth < 0) fail(line, fmt::format("unbalanced '{}'", char(c)));
      if (depth == 0) break;
    }
  }
  check_size(text, line);
  // The separator: ',' then another record, or ']' then only whitespace to the end.
  c = skip_blank();
  if (c == ',') {
    get();
    const int n = skip_blank();
    if (n == ']' || n == EOF) fail(line_, "a comma after the last record of the array");
  } else if (c == ']') {
    get();
    if (skip_blank() != EOF) fail(line_, "text after the closing ] of the top-level array");
    done_ = true;
  } else if (c == EOF) {
    fail(line_, "the top-level array is not closed (missing ])");
  } else {
    fail(line_, fmt::format("expected ',' or ']' after a record, found '{}'", message_excerpt(std::string(1, char(c)))));
  }
  return true;
}

}  // namespace cs
