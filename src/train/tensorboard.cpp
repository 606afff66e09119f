#include "train/tensorboard.h"

#include <fmt/core.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace cs {

uint32_t crc32c(const void* data, size_t n) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xffffffffu;
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) c = table[(c ^ p[i]) & 0xffu] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

namespace {
// Protobuf wire format pieces.
void varint(std::string& out, uint64_t v) {
  while (v >= 0x80) { out.push_back(char(v | 0x80)); v >>= 7; }
  out.push_back(char(v));
}
void key(std::string& out, int field, int wire) { varint(out, uint64_t(field) << 3 | uint64_t(wire)); }
void bytes_field(std::string& out, int field, const std::string& b) {
  key(out, field, 2);
  varint(out, b.size());
  out += b;
}
template <typename T>
void fixed_field(std::string& out, int field, T v) {
  key(out, field, sizeof(T) == 8 ? 1 : 5);
  char buf[sizeof(T)];
  std::memcpy(buf, &v, sizeof(T));  // little-endian host
  out.append(buf, sizeof(T));
}

std::string event(int64_t step, const std::string& file_version, const std::string& summary) {
  std::string e;
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  fixed_field(e, 1, now);
  key(e, 2, 0);
  varint(e, uint64_t(step));
  if (!file_version.empty()) bytes_field(e, 3, file_version);
  if (!summary.empty()) bytes_field(e, 5, summary);
  return e;
}
}  // namespace

TensorBoardWriter::TensorBoardWriter(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  char host[256] = "localhost";
  gethostname(host, sizeof host - 1);
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(
      std::chrono::system_clock::now().time_since_epoch()).count();
  path_ = fmt::format("{}/events.out.tfevents.{}.{}", dir, secs, host);
  f_ = std::fopen(path_.c_str(), "ab");
  if (!f_) throw Error(fmt::format("[tensorboard] cannot write {}. Hint: check --tensorboard-dir", path_));
  record(event(0, "brain.Event:2", ""));
}

TensorBoardWriter::~TensorBoardWriter() {
  if (f_) std::fclose(f_);
}

void TensorBoardWriter::record(const std::string& payload) {
  const uint64_t len = payload.size();
  const uint32_t len_crc = masked_crc32c(&len, 8), data_crc = masked_crc32c(payload.data(), payload.size());
  std::fwrite(&len, 8, 1, f_);
  std::fwrite(&len_crc, 4, 1, f_);
  std::fwrite(payload.data(), 1, payload.size(), f_);
  std::fwrite(&data_crc, 4, 1, f_);
  if (std::fflush(f_) != 0) throw Error(fmt::format("[tensorboard] writing {} failed (disk full?)", path_));
}

void TensorBoardWriter::scalars(int64_t step, const std::vector<std::pair<std::string, double>>& values) {
  std::string summary;
  for (const auto& [tag, v] : values) {
    std::string value;
    bytes_field(value, 1, tag);
    fixed_field(value, 2, float(v));
    bytes_field(summary, 1, value);
  }
  record(event(step, "", summary));
}

}  // namespace cs
