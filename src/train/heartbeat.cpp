#include "train/heartbeat.h"

#include <fmt/core.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_io.h"

namespace cs {

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string host_name() {
  char h[256] = {};
  if (gethostname(h, sizeof h - 1) != 0) return "localhost";
  return h;
}

void write_heartbeat(const std::string& dir, const Heartbeat& hb) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  const nlohmann::json j = {{"iteration", hb.iteration}, {"train_iters", hb.train_iters},
                            {"time", hb.time}, {"pid", hb.pid}, {"host", hb.host},
                            {"last_loss", hb.last_loss}, {"state", hb.state},
                            {"latest_checkpoint", hb.latest_checkpoint}};
  write_file_atomic(dir + "/heartbeat.json", j.dump(2) + "\n", "heartbeat");
}

std::optional<Heartbeat> read_heartbeat(const std::string& dir) {
  const std::string path = dir + "/heartbeat.json";
  std::ifstream f(path);
  if (!f) return std::nullopt;
  const auto j = nlohmann::json::parse(f, nullptr, false);
  try {
    if (j.is_discarded()) throw std::runtime_error("not valid JSON");
    Heartbeat hb;
    hb.iteration = j.at("iteration").get<int64_t>();
    hb.train_iters = j.value("train_iters", int64_t(0));
    hb.time = j.at("time").get<double>();
    hb.pid = j.at("pid").get<int64_t>();
    hb.host = j.at("host").get<std::string>();
    hb.state = j.at("state").get<std::string>();
    hb.last_loss = j.value("last_loss", 0.0);
    hb.latest_checkpoint = j.value("latest_checkpoint", std::string());
    return hb;
  } catch (const std::exception& e) {
    throw Error(fmt::format("[pulse] {}: malformed heartbeat ({}). Hint: it is rewritten by the next "
                            "training step; delete it if the run is gone", path, e.what()));
  }
}

HeartbeatWriter::HeartbeatWriter(std::string dir, int64_t train_iters, double min_interval)
    : dir_(std::move(dir)), min_interval_(min_interval) {
  hb_.train_iters = train_iters;
  hb_.pid = getpid();
  hb_.host = host_name();
}

void HeartbeatWriter::beat(int64_t iteration, double loss, const std::string& latest_checkpoint, bool force) {
  if (dir_.empty()) return;
  hb_.iteration = iteration;
  hb_.last_loss = loss;
  if (!latest_checkpoint.empty()) hb_.latest_checkpoint = latest_checkpoint;
  const double now = unix_now();
  if (!force && now - last_ < min_interval_) return;
  hb_.time = last_ = now;
  write_heartbeat(dir_, hb_);
}

void HeartbeatWriter::finish(const std::string& state) {
  if (dir_.empty()) return;
  hb_.state = state;
  hb_.time = unix_now();
  write_heartbeat(dir_, hb_);
}

}  // namespace cs
