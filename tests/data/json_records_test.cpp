// The streaming JSON record reader: arrays and JSON Lines split into the right records whatever
// the record holds (nested brackets, escaped quotes, brackets inside strings, chunk boundaries),
// and structural errors name the file and line.
#include "data/corpus/json_records.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace cs {
namespace {

std::string write_tmp(const std::string& name, const std::string& text) {
  const std::string p = testing::TempDir() + "/cs_json_" + name;
  std::ofstream(p, std::ios::binary) << text;
  return p;
}

std::vector<std::pair<std::string, int64_t>> read_all(const std::string& path) {
  JsonRecordReader r(path);
  std::vector<std::pair<std::string, int64_t>> out;
  std::string t;
  int64_t line = 0;
  while (r.next(t, line)) out.emplace_back(t, line);
  return out;
}

std::string error_of(const std::string& text) {
  const std::string p = write_tmp("bad.json", text);
  try {
    read_all(p);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(JsonRecords, ArraySplitsRecordsWithTrickyStrings) {
  const std::string recs[] = {R"({"text": "a ] b } c , \" [ {"})", R"({"a": [1, {"b": [2, 3]}], "c": "\\"})",
                              R"({"text": "中文 😀\tx"})", "{}"};
  std::string text = "\xEF\xBB\xBF [\n  " + recs[0] + ",\n" + recs[1] + " ,\r\n" + recs[2] + "," + recs[3] + "\n]\n";
  const auto got = read_all(write_tmp("arr.json", text));
  ASSERT_EQ(got.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(got[i].first, recs[i]);
    EXPECT_EQ(nlohmann::json::parse(got[i].first), nlohmann::json::parse(recs[i]));
  }
  EXPECT_EQ(got[0].second, 2);
  EXPECT_EQ(got[1].second, 3);
  EXPECT_EQ(got[2].second, 4);
}

TEST(JsonRecords, LinesSkipBlankLinesAndCarriageReturns) {
  const auto got = read_all(write_tmp("lines.jsonl", "{\"text\": \"a\"}\r\n\n   \n{\"text\": \"b\"}\n{\"text\": \"c\"}"));
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].first, "{\"text\": \"a\"}");
  EXPECT_EQ(got[1].second, 4);
  EXPECT_EQ(got[2].first, "{\"text\": \"c\"}");
  EXPECT_TRUE(read_all(write_tmp("empty.jsonl", "")).empty());
  EXPECT_TRUE(read_all(write_tmp("empty.json", " [ ] \n")).empty());
}

TEST(JsonRecords, RecordsLongerThanTheReadChunk) {
  // 3 MiB records cross the 1 MiB read chunk several times, in both forms.
  const std::string big(3 << 20, 'x');
  const std::string rec = "{\"text\": \"" + big + "\"}";
  for (const std::string& text : {"[" + rec + "," + rec + "]", rec + "\n" + rec + "\n"}) {
    const auto got = read_all(write_tmp("big.json", text));
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[1].first, rec);
  }
}

TEST(JsonRecords, StructuralErrorsNameTheLine) {
  EXPECT_NE(error_of("[{\"a\": 1},\n{\"a\": 2}").find("bad.json:2: the top-level array is not closed"), std::string::npos)
      << error_of("[{\"a\": 1},\n{\"a\": 2}");
  EXPECT_NE(error_of("[{\"a\": 1},\n]").find(":2: a comma after the last record"), std::string::npos);
  EXPECT_NE(error_of("[{\"a\": 1}]\n{\"b\": 2}").find(":2: text after the closing ]"), std::string::npos);
  EXPECT_NE(error_of("[{\"a\": 1}\n{\"a\": 2}]").find(":2: expected ',' or ']' after a record, found '{'"),
            std::string::npos);
  EXPECT_NE(error_of("[\n{\"a\": \"open]").find(":2: a string in this record is not terminated"), std::string::npos);
  EXPECT_NE(error_of("[{\"a\": 1}}]").find("expected ',' or ']' after a record, found '}'"), std::string::npos);
  EXPECT_NE(error_of("[1}]").find("unbalanced '}'"), std::string::npos);
  EXPECT_NE(error_of("[,{\"a\": 1}]").find("expected a record, found ','"), std::string::npos);
  // An unexpected control or non-UTF-8 byte is named escaped: the message stays one printable line.
  EXPECT_NE(error_of(std::string("[{\"a\": 1}\0]", 11)).find("found '\\x00'"), std::string::npos)
      << error_of(std::string("[{\"a\": 1}\0]", 11));
  EXPECT_NE(error_of("[{\"a\": 1}\xFF]").find("found '\\xFF'"), std::string::npos);
  EXPECT_NE(error_of("[{\"a\": 1}\n\n]x").find("text after the closing ]"), std::string::npos);
  try {
    JsonRecordReader r(testing::TempDir() + "/cs_json_missing.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot open"), std::string::npos);
  }
}

}  // namespace
}  // namespace cs
