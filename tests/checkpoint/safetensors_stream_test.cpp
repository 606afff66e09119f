// SafetensorsStreamWriter: the same bytes as write_safetensors however the data section is split
// into appends (byte by byte, across tensor boundaries); nothing under the final name until
// commit; an abandoned writer leaves no file; bad names are errors naming the file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "checkpoint/safetensors.h"
#include "checkpoint/safetensors_stream.h"

namespace cs {
namespace {
namespace fs = std::filesystem;

std::string fresh_dir(const std::string& tag) {
  const std::string d = ::testing::TempDir() + "/cs_st_stream_" + tag + "_" + std::to_string(getpid());
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string bytes_of(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

TEST(SafetensorsStream, SameBytesAsWriteSafetensorsForAnySplit) {
  const std::string d = fresh_dir("split");
  std::vector<float> a(7);
  std::vector<uint16_t> b(5);
  std::vector<uint8_t> c(3);
  for (size_t i = 0; i < a.size(); ++i) a[i] = float(i) * 1.5f - 2;
  for (size_t i = 0; i < b.size(); ++i) b[i] = uint16_t(0x3f80 + i);
  for (size_t i = 0; i < c.size(); ++i) c[i] = uint8_t(200 + i);
  const std::vector<NamedTensor> ts = {{"a", Tensor(a.data(), {7})},
                                       {"b", Tensor(b.data(), {5}, DType::BF16)},
                                       {"c", Tensor(c.data(), {1, 3}, DType::U8)}};
  const std::map<std::string, std::string> meta = {{"format", "pt"}};
  write_safetensors(d + "/whole.safetensors", ts, meta);
  std::string data;
  for (const NamedTensor& t : ts) data.append(static_cast<const char*>(t.t.data), t.t.nbytes());
  for (size_t step : {size_t(1), size_t(5), size_t(13), data.size()}) {
    std::vector<TensorEntry> entries;
    for (const NamedTensor& t : ts) entries.push_back({t.name, t.t.dtype, t.t.shape});
    const std::string path = d + "/s" + std::to_string(step) + ".safetensors";
    SafetensorsStreamWriter w(path, entries, meta);
    EXPECT_EQ(w.remaining(), data.size());
    for (size_t i = 0; i < data.size(); i += step) {
      EXPECT_FALSE(fs::exists(path));
      w.append(data.data() + i, std::min(step, data.size() - i));
    }
    EXPECT_EQ(w.remaining(), 0u);
    w.commit();
    EXPECT_EQ(bytes_of(path), bytes_of(d + "/whole.safetensors")) << "step " << step;
  }
}

TEST(SafetensorsStream, AbandonedWriterLeavesNothingAndBadNamesAreErrors) {
  const std::string d = fresh_dir("abandon");
  {
    SafetensorsStreamWriter w(d + "/x.safetensors", {{"a", DType::F32, Shape{4}}});
    const float half[2] = {1, 2};
    w.append(half, sizeof(half));
  }  // an exception on the way: no commit
  EXPECT_TRUE(fs::is_empty(d));
  for (const std::vector<TensorEntry>& bad : {std::vector<TensorEntry>{{"", DType::F32, Shape{1}}},
                                              {{"__metadata__", DType::F32, Shape{1}}},
                                              {{"a", DType::F32, Shape{1}}, {"a", DType::U8, Shape{2}}}}) {
    try {
      SafetensorsStreamWriter w(d + "/bad.safetensors", bad);
      ADD_FAILURE() << "accepted " << bad[0].name;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(d + "/bad.safetensors"), std::string::npos) << e.what();
    }
  }
  EXPECT_TRUE(fs::is_empty(d));
}

}  // namespace
}  // namespace cs
