// One run, one folder: the --save folder of a training run is locked for the run's lifetime
// (SAVE/train.lock, an flock that dies with the process, holding the owner's pid and host), and a
// fresh start into a folder that already holds another run (its checkpoints, metrics, heartbeat)
// is refused before anything is touched: `--load SAVE` resumes that run; `--start-over` first
// moves its files aside into SAVE/previous-<time>/.
#pragma once
#include <string>

namespace cs {

class RunLock {
 public:
  // Takes the lock of dir (created if missing); a cs::Error naming the holder's pid and host when
  // another process holds it.
  explicit RunLock(const std::string& dir);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

 private:
  int fd_ = -1;
};

// Whether dir holds a training run's files (latest_checkpointed_iteration.txt, iter_* folders,
// metrics.jsonl, heartbeat.json).
bool holds_a_run(const std::string& dir);

// For a run that saves into dir without resuming it: a UsageError with the ways out when dir holds
// another run, unless start_over, in which case that run's files are moved into
// dir/previous-<YYYYmmdd-HHMMSS>/ (the path is returned; "" when there was nothing to move).
std::string prepare_fresh_run_folder(const std::string& dir, bool start_over);

}  // namespace cs
