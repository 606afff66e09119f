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
  // The pid's start time (clock ticks since boot, /proc/PID/stat field 22): a pid the kernel has
  // since given to another process is not taken for the run. 0: unknown (then the pid alone).
  uint64_t pid_start = 0;
  double time = 0;  // unix seconds
  // running / finished / stopped / failed from the trainer; starting from a pulse that relaunched
  // the run (pid: the relaunched command's, log: where it writes) until the trainer's first beat.
  std::string host, state = "running", latest_checkpoint, log;
  double last_loss = 0;  // NaN when the last step's loss was not finite (JSON null)
};

// Writes DIR/heartbeat.json atomically.
void write_heartbeat(const std::string& dir, const Heartbeat& hb);
// Reads DIR/heartbeat.json; nullopt when absent; a cs::Error when malformed.
std::optional<Heartbeat> read_heartbeat(const std::string& dir);

double unix_now();
std::string host_name();

// PID's start time in clock ticks since boot; 0 when it cannot be read (no such process, no /proc).
uint64_t process_start_ticks(int64_t pid);
// Whether PID is a live process (not a zombie) and, when START is known, the same process that
// started then rather than a later one given the same pid.
bool process_alive(int64_t pid, uint64_t start = 0);

// Keeps a run's heartbeat: beat() rewrites it when `min_interval` seconds have passed.
class HeartbeatWriter {
 public:
  HeartbeatWriter(std::string dir, int64_t train_iters, double min_interval = 2.0);
  void beat(int64_t iteration, double loss, const std::string& latest_checkpoint, bool force = false);
  // Still working on the same iteration (an evaluation, a long step's micro-batches): a fresh time
  // (at most every min_interval), so that pulse does not take a long evaluation for a stall.
  void alive() { beat(hb_.iteration, hb_.last_loss, ""); }
  void finish(const std::string& state);  // "finished" or "failed"
  int64_t writes() const { return writes_; }  // heartbeat.json written so far

 private:
  std::string dir_;
  Heartbeat hb_;
  double last_ = 0, min_interval_;
  int64_t writes_ = 0;
};

}  // namespace cs
