// Test helpers for the MMIDIDX tests: fresh temp prefixes, raw file bytes, and an .idx built
// directly from Megatron's layout (independent of our writer) so reader and writer are each
// checked against the spec rather than against each other.
#pragma once
#include <gtest/gtest.h>

#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"

namespace cs::test {

using Bytes = std::vector<uint8_t>;

inline std::string fresh_prefix(const std::string& name) {
  std::filesystem::path d = std::filesystem::path(testing::TempDir()) / ("cs_indexed_" + name);
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return (d / "corpus_text_document").string();
}

inline Bytes file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_bytes(const std::string& path, const Bytes& b) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), long(b.size()));
}

// "4d 4d 49" -> bytes; whitespace ignored.
inline Bytes hex(const std::string& s) {
  std::string digits;
  for (char c : s)
    if (!std::isspace(uint8_t(c))) digits += c;
  Bytes out;
  for (size_t i = 0; i + 1 < digits.size(); i += 2)
    out.push_back(uint8_t(std::stoi(digits.substr(i, 2), nullptr, 16)));
  return out;
}

// The message of the cs::Error F throws, or "(no error)".
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// An .idx for dtype CODE (ITEM bytes per token): header, int32 lengths, int64 pointers
// (running sum of length * ITEM), int64 document indices DOCS, as Megatron's _IndexWriter.
inline Bytes spec_idx(uint8_t code, const std::vector<int32_t>& lengths,
                      const std::vector<int64_t>& docs, size_t item) {
  Bytes b = {'M', 'M', 'I', 'D', 'I', 'D', 'X', 0, 0};
  auto put = [&](const void* p, size_t n) {
    const uint8_t* q = static_cast<const uint8_t*>(p);
    b.insert(b.end(), q, q + n);
  };
  uint64_t version = 1, count = lengths.size(), ndocs = docs.size();
  put(&version, 8);
  put(&code, 1);
  put(&count, 8);
  put(&ndocs, 8);
  for (int32_t l : lengths) put(&l, 4);
  int64_t ptr = 0;
  for (int32_t l : lengths) {
    put(&ptr, 8);
    ptr += l * int64_t(item);
  }
  for (int64_t d : docs) put(&d, 8);
  return b;
}

// V's values stored as T, little-endian, back to back.
template <typename T>
Bytes typed_bytes(const std::vector<int32_t>& v) {
  Bytes b(v.size() * sizeof(T));
  for (size_t i = 0; i < v.size(); ++i) {
    T x = T(v[i]);
    std::memcpy(b.data() + i * sizeof(T), &x, sizeof(T));
  }
  return b;
}

}  // namespace cs::test
