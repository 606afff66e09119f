#include "train/heartbeat.h"

#include <fmt/core.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

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

namespace {
// /proc/PID/stat's fields after the command name (which is in parentheses and may hold spaces):
// [0] is the state (field 3), [19] the start time (field 22).
std::vector<std::string> stat_fields(int64_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!f || !std::getline(f, line)) return {};
  const size_t close = line.rfind(')');
  if (close == std::string::npos) return {};
  std::istringstream rest(line.substr(close + 1));
  std::vector<std::string> out;
  for (std::string w; rest >> w;) out.push_back(w);
  return out;
}
}  // namespace

uint64_t process_start_ticks(int64_t pid) {
  const auto f = stat_fields(pid);
  return f.size() > 19 ? std::strtoull(f[19].c_str(), nullptr, 10) : 0;
}

bool process_alive(int64_t pid, uint64_t start) {
  if (pid <= 0 || (kill(pid_t(pid), 0) != 0 && errno != EPERM)) return false;
  const auto f = stat_fields(pid);
  if (f.empty()) return true;  // no /proc: the pid is all there is
  if (f[0] == "Z" || f[0] == "X") return false;  // exited, not yet reaped
  return start == 0 || f.size() <= 19 || std::strtoull(f[19].c_str(), nullptr, 10) == start;
}

void write_heartbeat(const std::string& dir, const Heartbeat& hb) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  nlohmann::json j = {{"iteration", hb.iteration}, {"train_iters", hb.train_iters},
                      {"time", hb.time}, {"pid", hb.pid}, {"pid_start", hb.pid_start}, {"host", hb.host},
                      {"last_loss", nullptr}, {"state", hb.state},
                      {"latest_checkpoint", hb.latest_checkpoint}};
  if (std::isfinite(hb.last_loss)) j["last_loss"] = hb.last_loss;  // JSON has no NaN: null
  if (!hb.log.empty()) j["log"] = hb.log;
  write_file_atomic(dir + "/heartbeat.json", j.dump(2) + "\n", "heartbeat");
}

std::optional<Heartbeat> read_heartbeat(const std::string& dir) {
  const std::string path = dir + "/heartbeat.json";
  require_regular_file(path, "pulse", "heartbeat.json is a file written by chuanspeed train");
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
    const auto loss = j.find("last_loss");
    hb.last_loss = loss == j.end() ? 0.0 : loss->is_null() ? std::nan("") : loss->get<double>();
    hb.pid_start = j.value("pid_start", uint64_t(0));
    hb.latest_checkpoint = j.value("latest_checkpoint", std::string());
    hb.log = j.value("log", std::string());
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
  hb_.pid_start = process_start_ticks(hb_.pid);
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
  ++writes_;
}

void HeartbeatWriter::finish(const std::string& state) {
  if (dir_.empty()) return;
  hb_.state = state;
  hb_.time = unix_now();
  write_heartbeat(dir_, hb_);
  ++writes_;
}

}  // namespace cs
