// Test helpers for the GPT and blended dataset tests: a fresh directory per test (the tests run as
// parallel processes), and MMIDIDX datasets whose every token is unique (its global position plus
// a base), so a sample's tokens say exactly which document positions it read.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "data/indexed_dataset.h"

namespace cs::test {

inline std::string fresh_dir(const std::string& name) {
  std::filesystem::path d = std::filesystem::path(testing::TempDir()) /
                            ("cs_gpt_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d.string();
}

// Writes DIR/NAME_text_document with one single-sequence document per entry of LENGTHS; token t
// of the stream (documents back to back) is BASE + t. Returns the prefix.
inline std::string write_unique_dataset(const std::string& dir, const std::string& name,
                                        const std::vector<int32_t>& lengths, int32_t base = 0) {
  std::string prefix = dir + "/" + name + "_text_document";
  IndexedDatasetWriter w(prefix, DType::I32);
  int32_t next = base;
  for (int32_t len : lengths) {
    std::vector<int32_t> ids(static_cast<size_t>(len));
    for (int32_t& x : ids) x = next++;
    w.add_item(ids.data(), len);
    w.end_document();
  }
  w.finalize();
  return prefix;
}

// Lengths 0..12 in a fixed irregular pattern, with a few empty documents.
inline std::vector<int32_t> irregular_lengths(int n) {
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) out.push_back((i * 7 + 3) % 13);
  return out;
}

}  // namespace cs::test
