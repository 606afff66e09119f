// ParquetReader against files written by pyarrow (tests/fixtures/parquet, made by
// tools/fixtures/make_parquet_fixtures.py): every cell of every readable fixture must equal
// expected.json, for each codec, dictionary on/off, data page v1/v2, nulls and row groups.
// Error paths (corrupt, truncated, unsupported files) are in parquet_errors_test.cpp.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <set>

#include "core/error.h"
#include "data/parquet/parquet_reader.h"

namespace cs {
namespace {

using testing::HasSubstr;

const std::string kDir = std::string(CS_SOURCE_DIR) + "/tests/fixtures/parquet/";

const nlohmann::json& expected() {
  static const nlohmann::json j = [] {
    std::ifstream f(kDir + "expected.json");
    return nlohmann::json::parse(f);
  }();
  return j;
}

// Compares row ROW of file NAME with the expected cells, column by column.
void expect_row(const std::string& name, const nlohmann::json& spec, const ParquetRow& row) {
  const auto& cols = spec["columns"];
  ASSERT_EQ(row.size(), cols.size());
  for (size_t c = 0; c < cols.size(); ++c) {
    const std::string col = cols[c]["name"];
    const std::string type = cols[c]["type"];
    const nlohmann::json& want = spec["values"][col][size_t(row.index())];
    SCOPED_TRACE(name + " row " + std::to_string(row.index()) + " column " + col);
    EXPECT_EQ(row.is_null(c), want.is_null());
    if (type == "BYTE_ARRAY") {
      auto got = row.string(c);
      if (want.is_null()) EXPECT_FALSE(got.has_value());
      else EXPECT_EQ(got.value_or("<null>"), want.get<std::string>());
    } else if (type == "DOUBLE" || type == "FLOAT") {
      auto got = row.float64(c);
      if (want.is_null()) EXPECT_FALSE(got.has_value());
      else EXPECT_EQ(got.value_or(-1e300), want.get<double>());
    } else {
      auto got = row.int64(c);
      if (want.is_null()) EXPECT_FALSE(got.has_value());
      else if (want.is_boolean()) EXPECT_EQ(got.value_or(-7777), int64_t(want.get<bool>()));
      else EXPECT_EQ(got.value_or(-7777), want.get<int64_t>());
    }
  }
}

TEST(Parquet, EveryFixtureReadsBackExactly) {
  ASSERT_GE(expected()["files"].size(), 18u);
  for (const auto& [name, spec] : expected()["files"].items()) {
    SCOPED_TRACE(name);
    ParquetReader r(kDir + name);
    EXPECT_EQ(r.num_rows(), spec["num_rows"].get<int64_t>());
    ASSERT_EQ(r.columns().size(), spec["columns"].size());
    for (size_t c = 0; c < r.columns().size(); ++c) {
      EXPECT_EQ(r.columns()[c].name, spec["columns"][c]["name"].get<std::string>());
      EXPECT_EQ(parquet_type_name(r.columns()[c].type), spec["columns"][c]["type"].get<std::string>());
      EXPECT_EQ(r.columns()[c].optional, spec["columns"][c]["optional"].get<bool>());
    }
    int64_t next = 0;
    r.for_each_row({}, [&](const ParquetRow& row) {
      ASSERT_EQ(row.index(), next++);
      expect_row(name, spec, row);
    });
    EXPECT_EQ(next, r.num_rows());
  }
}

TEST(Parquet, MixedFixturesHaveSeveralRowGroups) {
  for (const char* name : {"none_plain_v1.parquet", "zstd_dict_v2.parquet", "gzip_dict_v1.parquet"}) {
    ParquetReader r(kDir + name);
    EXPECT_EQ(r.num_row_groups(), 4) << name;  // 30 rows, row_group_size 8
    EXPECT_EQ(r.num_rows(), 30) << name;
  }
  EXPECT_GT(ParquetReader(kDir + "alpaca_zstd_groups.parquet").num_row_groups(), 1);
}

TEST(Parquet, AlpacaWantedColumnsByNameAndPosition) {
  ParquetReader r(kDir + "alpaca.parquet");
  EXPECT_EQ(r.num_rows(), 50);
  const auto& spec = expected()["files"]["alpaca.parquet"];
  EXPECT_EQ(r.column_index("output"), 2);
  EXPECT_EQ(r.column_index("missing"), -1);
  int64_t n = 0;
  bool saw_chinese = false, saw_emoji = false, saw_empty_input = false;
  r.for_each_row({"text", "instruction", "input"}, [&](const ParquetRow& row) {
    ASSERT_EQ(row.size(), 3u);
    const size_t i = size_t(row.index());
    EXPECT_EQ(row.string(0).value(), spec["values"]["text"][i].get<std::string>());
    EXPECT_EQ(row.string("text").value(), spec["values"]["text"][i].get<std::string>());
    EXPECT_EQ(row.string(1).value(), spec["values"]["instruction"][i].get<std::string>());
    std::string_view input = row.string("input").value();
    EXPECT_EQ(input, spec["values"]["input"][i].get<std::string>());
    saw_empty_input |= input.empty();
    saw_chinese |= input.find("数字") != std::string_view::npos;
    saw_emoji |= input.find("🧮") != std::string_view::npos;
    ++n;
  });
  EXPECT_EQ(n, 50);
  EXPECT_TRUE(saw_chinese && saw_emoji && saw_empty_input);
}

TEST(Parquet, NullsAndEmptyStringsDiffer) {
  ParquetReader r(kDir + "snappy_dict_v2.parquet");
  std::set<std::string> kinds;
  r.for_each_row({"name"}, [&](const ParquetRow& row) {
    auto s = row.string("name");
    kinds.insert(!s ? "null" : s->empty() ? "empty" : "text");
  });
  EXPECT_EQ(kinds, (std::set<std::string>{"null", "empty", "text"}));
}

TEST(Parquet, ReadsTwiceTheSame) {
  ParquetReader r(kDir + "gzip_dict_v2.parquet");
  std::vector<std::string> a, b;
  r.for_each_row({"name"}, [&](const ParquetRow& row) { a.emplace_back(row.string(0).value_or("~")); });
  r.for_each_row({"name"}, [&](const ParquetRow& row) { b.emplace_back(row.string(0).value_or("~")); });
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.size(), 30u);
}

TEST(Parquet, WrongAccessorOrColumnIsAnErrorNamingIt) {
  ParquetReader r(kDir + "none_plain_v1.parquet");
  auto first_row = [&](const std::vector<std::string>& cols,
                       const std::function<void(const ParquetRow&)>& fn) {
    r.for_each_row(cols, [&](const ParquetRow& row) {
      if (row.index() == 0) fn(row);
    });
  };
  try {
    first_row({"id"}, [](const ParquetRow& row) { row.string(0); });
    FAIL() << "string() on INT64 read";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("column 'id' is INT64, read with string()"));
  }
  try {
    first_row({"id"}, [](const ParquetRow& row) { row.int64("name"); });
    FAIL() << "a column that was not wanted read";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("'name' was not among the wanted columns"));
  }
  try {
    first_row({"id", "nope"}, [](const ParquetRow&) {});
    FAIL() << "unknown column accepted";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("no column named 'nope': the file has id, small, name, score, flag, maybe, ratio"));
    EXPECT_THAT(e.what(), HasSubstr("none_plain_v1.parquet"));
  }
}

}  // namespace
}  // namespace cs
