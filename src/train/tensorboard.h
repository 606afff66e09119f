// TensorBoard event files (--tensorboard-dir): TFRecord framing (length, masked CRC32C of the
// length, payload, masked CRC32C of the payload) around `Event` protobufs holding scalar
// summaries, encoded by hand (no protobuf dependency): Event{wall_time=1 double, step=2 int64,
// file_version=3 string, summary=5 Summary}, Summary{value=1 Value}, Value{tag=1 string,
// simple_value=2 float}. Readable by TensorBoard's own reader (tools/check_tensorboard.py).
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace cs {

// CRC-32C (Castagnoli), and TFRecord's mask of it.
uint32_t crc32c(const void* data, size_t n);
inline uint32_t masked_crc32c(const void* data, size_t n) {
  const uint32_t c = crc32c(data, n);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

// The optional TensorBoard tags (Megatron's flags): learning-rate, loss-scale and grad-norm are
// written unless turned off, world-size only when asked for.
struct TensorBoardTags {
  bool learning_rate = true, loss_scale = true, grad_norm = true, world_size = false;
};

class TensorBoardWriter {
 public:
  // Creates DIR/events.out.tfevents.<unix time>.<host> and writes the file-version event.
  explicit TensorBoardWriter(const std::string& dir);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;
  // One event at `step` with these (tag, value) scalars; flushed so a live TensorBoard sees it.
  void scalars(int64_t step, const std::vector<std::pair<std::string, double>>& values);
  const std::string& path() const { return path_; }

 private:
  void record(const std::string& payload);
  std::string path_;
  std::FILE* f_ = nullptr;
};

}  // namespace cs
