// chuanspeed pulse --run-dir DIR [--stale-after SECONDS] [--job-name NAME] [--restart "COMMAND"]
// Is the run always running or scheduled? One line, and an exit status per state:
//   0 running   10 scheduled (a Slurm job of the run's name is pending)   20 finished
//   30 stalled (stale heartbeat)   40 not running   50 restarted (with --restart)
// --restart relaunches a stalled-and-dead or dead run, detached, logging into the run dir, with
// `--load RUN_DIR` when a checkpoint exists; a live process is never started twice (an flock on
// RUN_DIR/pulse.lock serialises concurrent pulses, and a live pid is never restarted).
#include <fcntl.h>
#include <fmt/core.h>
#include <sys/file.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <filesystem>

#include "checkpoint/native.h"
#include "cli/commands.h"
#include "cli/parse.h"
#include "core/error.h"
#include "train/heartbeat.h"

namespace cs::cli {

namespace {
bool pid_alive(int64_t pid) { return pid > 0 && (kill(pid_t(pid), 0) == 0 || errno == EPERM); }

bool slurm_pending(const std::string& name) {
  if (std::system("command -v squeue > /dev/null 2>&1") != 0) return false;
  const std::string cmd = "squeue -h -t PENDING -n '" + name + "' 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return false;
  char buf[256];
  const bool any = fgets(buf, sizeof buf, p) != nullptr;
  pclose(p);
  return any;
}
}  // namespace

int pulse_main(int argc, char** argv) {
  CLI::App app("Check that a training run is running or scheduled; restart it if not", "pulse");
  std::string dir, restart, job_name;
  double stale_after = 600;
  app.add_option("--run-dir", dir, "the run's --save directory (holds heartbeat.json)")->required();
  app.add_option("--stale-after", stale_after, "seconds without a heartbeat before the run counts as stalled")
      ->check(positive());
  app.add_option("--job-name", job_name, "Slurm job name (default: the run directory's name)");
  app.add_option("--restart", restart, "relaunch a dead run with this command (--load RUN_DIR is appended)");
  int code = 0;
  if (!parse(app, argc, argv, code)) return code;
  namespace fs = std::filesystem;
  if (!fs::is_directory(dir))
    throw Error(fmt::format("[pulse] --run-dir {}: no such directory. Hint: pass the run's --save directory", dir));
  if (job_name.empty()) job_name = fs::path(dir).filename().string();

  // One pulse at a time per run: the decision and the launch happen under the lock.
  const int lock = ::open((dir + "/pulse.lock").c_str(), O_CREAT | O_RDWR, 0644);
  if (lock < 0 || flock(lock, LOCK_EX) != 0)
    throw Error(fmt::format("[pulse] cannot lock {}/pulse.lock", dir));
  const auto hb = read_heartbeat(dir);
  const double now = unix_now();
  const bool same_host = hb && hb->host == host_name();
  const bool alive = hb && same_host && pid_alive(hb->pid);
  const double age = hb ? now - hb->time : 0;
  std::string state, detail;
  int status;
  if (hb && hb->state == "finished") {
    state = "finished", status = 20;
    detail = fmt::format("iteration {}/{}, last loss {:.4f}", hb->iteration, hb->train_iters, hb->last_loss);
  } else if (hb && hb->state == "running" && age <= stale_after && (alive || !same_host || hb->pid == 0)) {
    state = "running", status = 0;  // pid 0: relaunched by a pulse, not yet beating
    detail = hb->pid == 0 ? fmt::format("restarted {:.0f} s ago, starting", age)
                          : fmt::format("iteration {}/{}, heartbeat {:.0f} s ago, pid {} on {}", hb->iteration,
                                        hb->train_iters, age, hb->pid, hb->host);
  } else if (slurm_pending(job_name)) {
    state = "scheduled", status = 10;
    detail = fmt::format("Slurm job '{}' is pending", job_name);
  } else if (hb && hb->state == "running" && age > stale_after) {
    state = "stalled", status = 30;
    detail = fmt::format("no heartbeat for {:.0f} s (iteration {}), process {}", age, hb->iteration,
                         alive ? "alive" : "gone");
  } else {
    state = "not running", status = 40;
    detail = hb ? fmt::format("state {}, pid {} gone, iteration {}", hb->state, hb->pid, hb->iteration)
                : "no heartbeat.json";
  }
  std::printf("%s: %s (%s)\n", dir.c_str(), state.c_str(), detail.c_str());
  if (!restart.empty() && (status == 30 || status == 40)) {
    if (alive) {
      std::printf("not restarting: pid %lld is still alive (stop it first)\n", (long long)hb->pid);
    } else {
      const bool ckpt = latest_iteration(dir) >= 0;
      const std::string log = fmt::format("{}/restart-{:.0f}.log", dir, now);
      const std::string cmd = fmt::format("setsid sh -c '{}{}' > '{}' 2>&1 < /dev/null &", restart,
                                          ckpt ? " --load " + dir : "", log);
      if (std::system(cmd.c_str()) != 0) throw Error(fmt::format("[pulse] could not launch: {}", cmd));
      // Mark the run as starting so a concurrent pulse after the lock does not launch it again.
      Heartbeat next = hb.value_or(Heartbeat{});
      next.state = "running";
      next.time = now;
      next.host = host_name();
      next.pid = 0;
      write_heartbeat(dir, next);
      std::printf("restarted%s, logging to %s\n", ckpt ? " from the latest checkpoint" : "", log.c_str());
      status = 50;
    }
  }
  flock(lock, LOCK_UN);
  ::close(lock);
  return status;
}

}  // namespace cs::cli
