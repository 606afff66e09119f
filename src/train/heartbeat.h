// The run's heartbeat: RUN_DIR/heartbeat.json, rewritten atomically by the trainer (at most every
// couple of seconds, and at every state change) with iteration, time, pid, host, last loss, state
// (running / finished / failed) and the latest checkpoint. `chuanspeed pulse` reads it to decide
// whether the run is alive.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

namespace cs {

struct Heartbeat {
  int64_t iteration = 0, train_iters = 0, pid = 0;
  double time = 0;  // unix seconds
  std::string host, state = "running", latest_checkpoint;
  double last_loss = 0;
};

// Writes DIR/heartbeat.json atomically.
void write_heartbeat(const std::string& dir, const Heartbeat& hb);
// Reads DIR/heartbeat.json; nullopt when absent; a cs::Error when malformed.
std::optional<Heartbeat> read_heartbeat(const std::string& dir);

double unix_now();
std::string host_name();

// Keeps a run's heartbeat: beat() rewrites it when `min_interval` seconds have passed.
class HeartbeatWriter {
 public:
  HeartbeatWriter(std::string dir, int64_t train_iters, double min_interval = 2.0);
  void beat(int64_t iteration, double loss, const std::string& latest_checkpoint, bool force = false);
  void finish(const std::string& state);  // "finished" or "failed"

 private:
  std::string dir_;
  Heartbeat hb_;
  double last_ = 0, min_interval_;
};

}  // namespace cs
