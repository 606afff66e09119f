#include "train/run_folder.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <fmt/core.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <vector>

#include "core/error.h"
#include "train/heartbeat.h"

namespace cs {

namespace fs = std::filesystem;

RunLock::RunLock(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  const std::string path = dir + "/train.lock";
  fd_ = ::open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw Error(fmt::format("[train] cannot open {}: {}. Hint: check that --save names a folder you may write",
                            path, std::strerror(errno)));
  if (flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    std::ifstream f(path);
    std::string owner;
    std::getline(f, owner);
    ::close(fd_);
    fd_ = -1;
    throw Error(fmt::format("[train] --save {} is in use by another training run ({}). Hint: one run per folder: "
                            "wait for it, stop it, or pass another --save", dir,
                            owner.empty() ? "its lock is held" : owner));
  }
  const std::string me = fmt::format("pid {} on {}", ::getpid(), host_name());
  if (ftruncate(fd_, 0) == 0 && ::write(fd_, me.data(), me.size()) < 0) {
    // The owner line is for messages only: the lock itself is what keeps a second run out.
  }
}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

namespace {
// The entries of dir that belong to a run.
std::vector<fs::path> run_entries(const std::string& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name == "latest_checkpointed_iteration.txt" || name == "metrics.jsonl" || name == "heartbeat.json" ||
        name.rfind("iter_", 0) == 0)
      out.push_back(e.path());
  }
  return out;
}
}  // namespace

bool holds_a_run(const std::string& dir) { return !run_entries(dir).empty(); }

std::string prepare_fresh_run_folder(const std::string& dir, bool start_over) {
  const std::vector<fs::path> entries = run_entries(dir);
  if (entries.empty()) return "";
  if (!start_over)
    throw UsageError(fmt::format("--save {} holds another run (its checkpoints or metrics); a new run would mix "
                                 "with it. Hint: --load {} resumes that run; pass another --save for a new one, or "
                                 "--start-over to move the old run's files aside first", dir, dir));
  char stamp[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&now));
  const fs::path aside = fs::path(dir) / (std::string("previous-") + stamp);
  std::error_code ec;
  fs::create_directories(aside, ec);
  for (const fs::path& p : entries) {
    fs::rename(p, aside / p.filename(), ec);
    if (ec)
      throw Error(fmt::format("[train] --start-over: cannot move {} into {}: {}", p.string(), aside.string(),
                              ec.message()));
  }
  return aside.string();
}

}  // namespace cs
