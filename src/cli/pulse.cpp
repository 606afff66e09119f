// chuanspeed pulse --run-dir DIR [--stale-after SECONDS] [--job-name NAME] [--restart "COMMAND"]
// Is the run always running or scheduled? One line, and an exit status per state:
//   0 running   10 scheduled (a Slurm job of the run's name is pending)   20 finished
//   30 stalled (stale heartbeat)   40 not running   50 restarted (with --restart)
// --restart relaunches a stalled-and-dead or dead run: detached (own session), logging into the
// run dir, with `--load RUN_DIR --resume` appended when a checkpoint exists (train takes the last
// --load, and --resume overrides a first start's --finetune / --no-load-optim / --no-load-rng). A
// live process is never started twice: concurrent pulses serialise on an flock of
// RUN_DIR/pulse.lock, a live pid (checked with its start time, so a reused pid is not taken for
// the run) is never restarted, nor a run whose process is on another host, and the relaunch is
// recorded in the heartbeat (state starting, its pid and log) before its command runs.
#include <fcntl.h>
#include <fmt/core.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <thread>

#include "checkpoint/native.h"
#include "cli/commands.h"
#include "cli/parse.h"
#include "core/error.h"
#include "train/checkpointing.h"
#include "train/heartbeat.h"

namespace cs::cli {

namespace {
std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

bool slurm_pending(const std::string& name) {
  if (std::system("command -v squeue > /dev/null 2>&1") != 0) return false;
  FILE* p = popen(("squeue -h -t PENDING -n " + shell_quote(name) + " 2>/dev/null").c_str(), "r");
  if (!p) return false;
  char buf[256];
  const bool any = fgets(buf, sizeof buf, p) != nullptr;
  pclose(p);
  return any;
}

// The run's pulse.lock, held until the process exits (close-on-exec: a relaunched run never
// inherits it). Waits up to WAIT seconds for another pulse, then one clear line.
int lock_run(const std::string& dir, double wait) {
  const std::string path = dir + "/pulse.lock";
  const int fd = ::open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  if (fd < 0)
    throw Error(fmt::format("[pulse] cannot open {}: {}. Hint: check the run directory's permissions", path,
                            std::strerror(errno)));
  const auto start = std::chrono::steady_clock::now();
  while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK && errno != EINTR)
      throw Error(fmt::format("[pulse] cannot lock {}: {}", path, std::strerror(errno)));
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() >= wait)
      throw Error(fmt::format("[pulse] {}: another pulse has held the lock for {:.0f} s. Hint: it is deciding "
                              "or launching; run again later (--lock-wait sets how long to wait)", path, wait));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return fd;
}

// Starts COMMAND with sh in its own session, stdin from /dev/null, stdout and stderr into LOG, and
// returns its pid. The child waits until RECORD (the caller's heartbeat marker) has run, so the
// marker can never overwrite the relaunched trainer's first heartbeat.
int64_t launch(const std::string& command, const std::string& log, const std::function<void(int64_t)>& record) {
  const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) throw Error(fmt::format("[pulse] cannot write {}: {}", log, std::strerror(errno)));
  int go[2];
  if (pipe2(go, O_CLOEXEC) != 0) throw Error(fmt::format("[pulse] pipe: {}", std::strerror(errno)));
  const pid_t pid = fork();
  if (pid == 0) {
    setsid();
    ::close(go[1]);  // else this process's own copy keeps the pipe open and the read never ends
    char c;
    while (read(go[0], &c, 1) < 0 && errno == EINTR) {
    }  // EOF: the marker is written
    const int in = ::open("/dev/null", O_RDONLY);
    dup2(in, 0);
    dup2(out, 1);
    dup2(out, 2);
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  ::close(go[0]);
  ::close(out);
  if (pid < 0) {
    ::close(go[1]);
    throw Error(fmt::format("[pulse] could not start the restart command: {}", std::strerror(errno)));
  }
  try {
    record(pid);
  } catch (...) {
    kill(pid, SIGKILL);
    ::close(go[1]);
    throw;
  }
  ::close(go[1]);
  return pid;
}

std::string loss_text(double loss) { return std::isfinite(loss) ? fmt::format("{:.4f}", loss) : "nan"; }
}  // namespace

int pulse_main(int argc, char** argv) {
  CLI::App app("Check that a training run is running or scheduled; restart it if not", "pulse");
  std::string dir, restart, job_name;
  double stale_after = 600, lock_wait = 60;
  app.add_option("--run-dir", dir, "the run's --save directory (holds heartbeat.json)")->required();
  app.add_option("--stale-after", stale_after, "seconds without a heartbeat before the run counts as stalled")
      ->check(positive());
  app.add_option("--job-name", job_name, "Slurm job name (default: the run directory's name)");
  app.add_option("--restart", restart, "relaunch a dead run with this command (--load RUN_DIR --resume appended)");
  app.add_option("--lock-wait", lock_wait, "seconds to wait for another pulse of the same run")
      ->check(CLI::NonNegativeNumber);
  int code = 0;
  if (!parse(app, argc, argv, code)) return code;
  namespace fs = std::filesystem;
  if (!fs::is_directory(dir))
    throw Error(fmt::format("[pulse] --run-dir {}: no such directory. Hint: pass the run's --save directory", dir));
  if (job_name.empty()) {
    std::error_code ec;
    job_name = fs::weakly_canonical(dir, ec).filename().string();  // "run/" names "run" too
    if (job_name.empty())
      throw UsageError(fmt::format("--run-dir {}: no name to look up in Slurm. Hint: pass --job-name", dir));
  }

  // One pulse at a time per run: the decision and the launch happen under the lock.
  const int lock = lock_run(dir, lock_wait);
  const auto hb = read_heartbeat(dir);
  const double now = unix_now();
  const bool same_host = hb && hb->host == host_name();
  const bool alive = hb && same_host && process_alive(hb->pid, hb->pid_start);
  const bool active = hb && (hb->state == "running" || hb->state == "starting");
  const double age = hb ? now - hb->time : 0;
  const std::string where =
      !hb ? "" : same_host ? (alive ? "alive" : "gone") : fmt::format("on {}, not checked from here", hb->host);
  std::string state, detail;
  int status;
  if (hb && hb->state == "finished") {
    state = "finished", status = 20;
    detail = fmt::format("iteration {}/{}, last loss {}", hb->iteration, hb->train_iters, loss_text(hb->last_loss));
  } else if (active && age <= stale_after && (alive || !same_host)) {
    state = "running", status = 0;
    detail = hb->state == "starting"
                 ? fmt::format("relaunched by a pulse {:.0f} s ago, pid {} ({}), starting; log {}", age, hb->pid,
                               where, hb->log)
                 : fmt::format("iteration {}/{}, heartbeat {:.0f} s ago, pid {} on {}", hb->iteration,
                               hb->train_iters, age, hb->pid, hb->host);
  } else if (slurm_pending(job_name)) {
    state = "scheduled", status = 10;
    detail = fmt::format("Slurm job '{}' is pending", job_name);
  } else if (active && age > stale_after) {
    state = "stalled", status = 30;
    detail = fmt::format("no heartbeat for {:.0f} s (iteration {}), process {}", age, hb->iteration, where);
  } else {
    state = "not running", status = 40;
    if (!hb)
      detail = "no heartbeat.json";
    else if (hb->state == "starting")
      detail = fmt::format("the relaunch (pid {}) exited before its first heartbeat; see {}", hb->pid, hb->log);
    else
      detail = fmt::format("state {}, pid {} gone, iteration {}, last loss {}", hb->state, hb->pid, hb->iteration,
                           loss_text(hb->last_loss));
  }
  std::printf("%s: %s (%s)\n", dir.c_str(), state.c_str(), detail.c_str());
  if (!restart.empty() && (status == 30 || status == 40)) {
    if (alive) {
      std::printf("not restarting: pid %lld is still alive (stop it first)\n", (long long)hb->pid);
    } else if (active && !same_host) {
      std::printf("not restarting: the run's process is on %s, which this pulse cannot check (run pulse there, "
                  "or delete heartbeat.json if that run is gone)\n", hb->host.c_str());
    } else if (const int64_t ckpt = latest_iteration(dir); ckpt >= 0 && !checkpoint_summary(dir).holds_optimizer) {
      std::printf("not restarting: the latest checkpoint (iteration %lld) was saved with --no-save-optim, which "
                  "--resume cannot continue (relaunch it by hand with --load %s --no-load-optim)\n", (long long)ckpt,
                  shell_quote(dir).c_str());
    } else {
      const std::string log = fmt::format("{}/restart-{:.0f}.log", dir, now);
      const std::string cmd = restart + (ckpt >= 0 ? " --load " + shell_quote(dir) + " --resume" : "");
      const int64_t pid = launch(cmd, log, [&](int64_t child) {
        Heartbeat next = hb.value_or(Heartbeat{});
        next.state = "starting";
        next.time = now;
        next.host = host_name();
        next.pid = child;
        next.pid_start = process_start_ticks(child);
        next.log = log;
        write_heartbeat(dir, next);
      });
      if (ckpt >= 0)
        std::printf("restarted from the latest checkpoint (iteration %lld), pid %lld, logging to %s\n",
                    (long long)ckpt, (long long)pid, log.c_str());
      else
        std::printf("restarted (no checkpoint yet), pid %lld, logging to %s\n", (long long)pid, log.c_str());
      status = 50;
    }
  }
  ::close(lock);
  return status;
}

}  // namespace cs::cli
