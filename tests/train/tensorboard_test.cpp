// TensorBoard event files read back by an independent reader written here from the formats'
// specs (TFRecord framing with a bitwise CRC-32C, protobuf wire format): the logged scalars come
// back exactly; a real training run writes every Megatron tag (training and validation) with the
// values of its metrics.jsonl and real wall times.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

#include "cli/run_util.h"
#include "train/heartbeat.h"
#include "train/tensorboard.h"

namespace cs {
namespace {
namespace fs = std::filesystem;

uint32_t crc32c_bitwise(const uint8_t* p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1u)));
  }
  return ~c;
}
uint32_t mask(uint32_t c) { return ((c >> 15) | (c << 17)) + 0xa282ead8u; }

struct Reader {
  const std::string& b;
  size_t i = 0;
  uint64_t varint() {
    uint64_t v = 0;
    for (int s = 0;; s += 7) {
      const uint8_t x = uint8_t(b.at(i++));
      v |= uint64_t(x & 0x7f) << s;
      if (!(x & 0x80)) return v;
    }
  }
};

// (step, tag) -> value for every scalar in the file; checks every CRC.
std::map<std::pair<int64_t, std::string>, float> read_events(const std::string& path, std::string* version,
                                                              std::vector<double>* wall_times = nullptr) {
  std::ifstream f(path, std::ios::binary);
  const std::string data((std::istreambuf_iterator<char>(f)), {});
  std::map<std::pair<int64_t, std::string>, float> out;
  size_t pos = 0;
  while (pos < data.size()) {
    uint64_t len;
    uint32_t lcrc, dcrc;
    std::memcpy(&len, data.data() + pos, 8);
    std::memcpy(&lcrc, data.data() + pos + 8, 4);
    EXPECT_EQ(lcrc, mask(crc32c_bitwise(reinterpret_cast<const uint8_t*>(data.data() + pos), 8)));
    const std::string ev = data.substr(pos + 12, len);
    std::memcpy(&dcrc, data.data() + pos + 12 + len, 4);
    EXPECT_EQ(dcrc, mask(crc32c_bitwise(reinterpret_cast<const uint8_t*>(ev.data()), ev.size())));
    pos += 16 + len;
    Reader r{ev};
    int64_t step = 0;
    while (r.i < ev.size()) {
      const uint64_t k = r.varint();
      if (k == (1 << 3 | 1)) {                                              // wall_time
        double w;
        std::memcpy(&w, ev.data() + r.i, 8);
        if (wall_times) wall_times->push_back(w);
        r.i += 8;
        continue;
      }
      if (k == (2 << 3 | 0)) { step = int64_t(r.varint()); continue; }     // step
      const uint64_t n = r.varint();                                      // length-delimited
      const std::string body = ev.substr(r.i, n);
      r.i += n;
      if (k == (3 << 3 | 2)) { *version = body; continue; }
      EXPECT_EQ(k, uint64_t(5 << 3 | 2));                                 // summary
      Reader s{body};
      while (s.i < body.size()) {
        EXPECT_EQ(s.varint(), uint64_t(1 << 3 | 2));                      // value
        const uint64_t vn = s.varint();
        const std::string val = body.substr(s.i, vn);
        s.i += vn;
        Reader v{val};
        std::string tag;
        float x = 0;
        while (v.i < val.size()) {
          const uint64_t vk = v.varint();
          if (vk == (1 << 3 | 2)) { const uint64_t tn = v.varint(); tag = val.substr(v.i, tn); v.i += tn; }
          else if (vk == (2 << 3 | 5)) { std::memcpy(&x, val.data() + v.i, 4); v.i += 4; }
          else ADD_FAILURE() << "unexpected key " << vk;
        }
        out[{step, tag}] = x;
      }
    }
  }
  return out;
}

TEST(TensorBoard, Crc32cKnownVector) {
  EXPECT_EQ(crc32c("123456789", 9), 0xe3069283u);
  const std::string s = "any bytes \x01\x02";
  EXPECT_EQ(crc32c(s.data(), s.size()), crc32c_bitwise(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
}

TEST(TensorBoard, IndependentReaderGetsTheLoggedValuesBack) {
  const std::string dir = ::testing::TempDir() + "/cs_tb_" + std::to_string(getpid());
  fs::remove_all(dir);
  std::string path;
  {
    TensorBoardWriter w(dir);
    path = w.path();
    w.scalars(10, {{"lm loss", 6.5}, {"learning-rate", 3e-4}});
    w.scalars(20, {{"lm loss", 5.25}, {"grad-norm", 1.125}});
  }
  EXPECT_EQ(fs::path(path).filename().string().rfind("events.out.tfevents.", 0), 0u);
  std::string version;
  const auto ev = read_events(path, &version);
  EXPECT_EQ(version, "brain.Event:2");
  ASSERT_EQ(ev.size(), 4u);
  EXPECT_EQ(ev.at({10, "lm loss"}), 6.5f);
  EXPECT_EQ(ev.at({10, "learning-rate"}), 3e-4f);
  EXPECT_EQ(ev.at({20, "lm loss"}), 5.25f);
  EXPECT_EQ(ev.at({20, "grad-norm"}), 1.125f);
}

// A real training run: every tag Megatron writes (training, validation, and the validation and test
// evaluations at the end of training) at every logged iteration, and again as "TAG vs samples" at
// the consumed samples, equal to the run's metrics.jsonl as floats, and a wall time within the run.
TEST(TensorBoard, TrainerWritesEveryTagWithTheLoggedValues) {
  const std::string dir = ::testing::TempDir() + "/cs_tb_train_" + std::to_string(getpid());
  fs::remove_all(dir);  // synth-data creates it
  const double t0 = unix_now();
  ASSERT_EQ(0, test::run_binary("synth-data --output-prefix " + dir + "/data --vocab-size 101 --num-docs 40").status);
  const auto r = test::run_binary(
      "train --model tiny --vocab-size 101 --make-vocab-size-divisible-by 1 --seq-length 16 --train-iters 8 "
      "--micro-batch-size 1 --global-batch-size 3 --log-interval 2 --eval-interval 3 --eval-iters 1 --split 70,20,10 "
      "--lr 1e-3 --fp16 --data-path " + dir +
      "/data --save " + dir + "/run --tensorboard-dir " + dir + "/tb");
  ASSERT_EQ(r.status, 0) << r.err;
  std::string path;
  for (const auto& e : fs::directory_iterator(dir + "/tb")) path = e.path().string();
  std::string version;
  std::vector<double> walls;
  const auto ev = read_events(path, &version, &walls);
  EXPECT_EQ(version, "brain.Event:2");
  ASSERT_FALSE(walls.empty());
  for (double w : walls) {
    EXPECT_GE(w, t0 - 1);
    EXPECT_LE(w, unix_now() + 1);
  }
  std::ifstream m(dir + "/run/metrics.jsonl");
  int train_records = 0, valid_records = 0, test_records = 0;
  for (std::string line; std::getline(m, line);) {
    const auto j = nlohmann::json::parse(line);
    const int64_t it = j.at("iteration").get<int64_t>();
    // Validation records hold no sample count: 3 samples per iteration here (so that a tag at the
    // iteration instead of the samples is found out).
    const int64_t samples = j.value("consumed_samples", it * 3);
    // Each tag at the iteration, and Megatron's "TAG vs samples" at the consumed samples, unless
    // `also_vs_samples` is false (the throughput, Megatron has no such tag for it).
    auto expect = [&](const char* tag, const char* key, bool also_vs_samples = true) {
      const auto found = ev.find({it, tag});
      ASSERT_NE(found, ev.end()) << tag << " at " << it;
      EXPECT_EQ(found->second, float(j.at(key).get<double>())) << tag << " at " << it;
      if (!also_vs_samples) return;
      const auto vs = ev.find({samples, std::string(tag) + " vs samples"});
      ASSERT_NE(vs, ev.end()) << tag << " vs samples at " << samples;
      EXPECT_EQ(vs->second, found->second) << tag << " vs samples at " << samples;
    };
    if (j.contains("skipped_iterations")) {  // a training record (fp32 here: loss and norm in each)
      ++train_records;
      expect("lm loss", "lm_loss");
      expect("learning-rate", "learning_rate");
      expect("loss-scale", "loss_scale");
      expect("grad-norm", "grad_norm");
      expect("batch-size", "global_batch_size");
      expect("tokens-per-second-per-device", "tokens_per_s_per_device", false);
      expect("tflops-per-device", "tflops_per_device", false);
    } else if (j.contains("test_lm_loss")) {  // the test split, at the end of training
      ++test_records;
      EXPECT_TRUE(j.value("end_of_training", false));
      expect("lm loss test", "test_lm_loss");
      expect("lm loss test ppl", "test_ppl");
    } else {  // validation at iterations 3 and 6, and at the end of training (8)
      ++valid_records;
      EXPECT_EQ(j.value("end_of_training", false), it == 8) << it;
      expect("lm loss validation", "valid_lm_loss");
      expect("lm loss validation ppl", "valid_ppl");
    }
  }
  EXPECT_EQ(train_records, 4);
  EXPECT_EQ(valid_records, 3);
  EXPECT_EQ(test_records, 1);
  EXPECT_EQ(ev.size(), size_t(train_records * (5 * 2 + 2) + valid_records * 2 * 2 + test_records * 2 * 2));
  fs::remove_all(dir);
}

// Megatron's flags that choose tags: --no-log-learnig-rate-to-tensorboard (its spelling),
// --no-log-loss-scale-to-tensorboard and --no-log-gradient-norm-to-tensorboard leave theirs out,
// --log-world-size-to-tensorboard adds world-size; --log-batch-size-to-tensorboard is accepted (the
// batch size is always written).
TEST(TensorBoard, MegatronsTagFlagsChooseTheTags) {
  const std::string dir = ::testing::TempDir() + "/cs_tb_tags_" + std::to_string(getpid());
  fs::remove_all(dir);
  ASSERT_EQ(0, test::run_binary("synth-data --output-prefix " + dir + "/data --vocab-size 101 --num-docs 40").status);
  const auto r = test::run_binary(
      "train --model tiny --vocab-size 101 --seq-length 16 --train-iters 2 --log-interval 1 --eval-iters 0 --lr 1e-3 "
      "--no-log-learnig-rate-to-tensorboard --no-log-loss-scale-to-tensorboard --no-log-gradient-norm-to-tensorboard "
      "--log-world-size-to-tensorboard --log-batch-size-to-tensorboard --data-path " + dir + "/data --save " + dir +
      "/run --tensorboard-dir " + dir + "/tb");
  ASSERT_EQ(r.status, 0) << r.err;
  std::string path, version;
  for (const auto& e : fs::directory_iterator(dir + "/tb")) path = e.path().string();
  std::map<std::string, int> tags;
  for (const auto& [key, value] : read_events(path, &version)) ++tags[key.second];
  for (const char* gone : {"learning-rate", "loss-scale", "grad-norm", "learning-rate vs samples"})
    EXPECT_EQ(tags.count(gone), 0u) << gone;
  for (const char* kept : {"lm loss", "lm loss vs samples", "batch-size", "world-size", "world-size vs samples"})
    EXPECT_EQ(tags[kept], 2) << kept;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace cs
