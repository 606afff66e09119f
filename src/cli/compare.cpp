// chuanspeed compare RUN_A RUN_B [--plot FILE.svg] [--from-iter N] [--to-iter M] [--tolerance T]
// AscendSpeed's Baichuan README "accuracy of the loss" check between two runs (A is the reference). Exit status:
// 0 within tolerance, 3 beyond it, 1 bad input (including runs that log different iterations),
// 2 usage.
#include <fmt/core.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "cli/commands.h"
#include "cli/parse.h"
#include "core/error.h"
#include "core/log.h"
#include "train/loss_curve.h"

extern char** environ;

namespace cs::cli {

namespace {
// A run directory means its metrics.jsonl.
std::string curve_file(const std::string& p) {
  return std::filesystem::is_directory(p) ? p + "/metrics.jsonl" : p;
}

void print_run(const char* tag, const std::string& path, const LossCurve& c) {
  int64_t first = c.loss.begin()->first, last = c.loss.rbegin()->first;
  if (!c.skipped.empty()) first = std::min(first, *c.skipped.begin()), last = std::max(last, *c.skipped.rbegin());
  std::printf("%s: %s: %zu iterations (%lld..%lld)", tag, path.c_str(), c.loss.size() + c.skipped.size(),
              (long long)first, (long long)last);
  if (!c.skipped.empty()) std::printf(", %zu of them without a loss (every step skipped)", c.skipped.size());
  std::printf("\n");
}

// rsvg-convert SVG -> PNG without a shell (run names may hold quotes). Returns true when the PNG
// was written; false with `why` empty when rsvg-convert is not installed (the PNG is optional),
// false with `why` set when it ran and failed.
bool render_png(const std::string& svg, const std::string& png, std::string& why) {
  int fds[2];
  if (pipe(fds) != 0) return why = std::strerror(errno), false;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDERR_FILENO);
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  posix_spawn_file_actions_addclose(&actions, fds[1]);
  const char* args[] = {"rsvg-convert", "-o", png.c_str(), svg.c_str(), nullptr};
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, "rsvg-convert", &actions, nullptr, const_cast<char**>(args), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    if (rc != ENOENT) why = std::strerror(rc);
    return false;
  }
  std::string err;
  char buf[4096];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR);)
    if (n > 0) err.append(buf, size_t(n));
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return true;
  err = err.substr(0, err.find('\n'));
  why = WIFEXITED(status) ? fmt::format("exit status {}", WEXITSTATUS(status)) : "killed by a signal";
  if (!err.empty()) why += ": " + err;
  return false;
}
}  // namespace

int compare_main(int argc, char** argv) {
  CLI::App app("Compare the loss curves of two runs", "compare");
  std::string run_a, run_b, plot;
  int64_t from = 0, to = std::numeric_limits<int64_t>::max();
  double tolerance = 0.02;
  app.add_option("RUN_A", run_a, "reference: metrics.jsonl, a run directory or a Megatron log")->required();
  app.add_option("RUN_B", run_b, "compared run: the same kinds")->required();
  app.add_option("--plot", plot, "write an SVG of both curves and the relative error (and a PNG with rsvg-convert)");
  app.add_option("--from-iter", from, "first iteration compared");
  app.add_option("--to-iter", to, "last iteration compared");
  app.add_option("--tolerance", tolerance, "bound on the mean relative error and on the relative error of the average loss")
      ->check(positive());
  int code = 0;
  if (!parse(app, argc, argv, code)) return code;
  if (from > to)
    throw UsageError(fmt::format("[compare] --from-iter {} is after --to-iter {}; Hint: the range is [--from-iter, --to-iter]", from, to));
  const LossCurve a = read_loss_curve(curve_file(run_a)), b = read_loss_curve(curve_file(run_b));
  print_run("A", run_a, a);
  print_run("B", run_b, b);
  for (const LossCurve* c : {&a, &b})
    for (const std::string& n : c->notes) std::printf("note: %s\n", n.c_str());
  const CurveComparison c = compare_curves(a, b, from, to);
  std::printf("compared %zu iterations (%lld..%lld), skipped %lld\n", c.iterations.size(), (long long)c.iterations.front(),
              (long long)c.iterations.back(), (long long)(c.both_nonfinite + c.skipped_intervals));
  if (c.both_nonfinite > 0)
    std::printf("note: skipped %lld iteration(s) where the loss is NaN or inf in both runs\n", (long long)c.both_nonfinite);
  if (c.skipped_intervals > 0)
    std::printf("note: skipped %lld iteration(s) where a run logged no loss: every step of the interval was skipped "
                "(fp16 loss scale overflow)\n", (long long)c.skipped_intervals);
  if (c.one_nonfinite > 0)
    std::printf("note: %lld iteration(s) where only one run's loss is NaN or inf: relative error infinite\n",
                (long long)c.one_nonfinite);
  std::printf("mean relative error:                 %.6f\n", c.mean_rel);
  std::printf("max relative error:                  %.6f (iteration %lld)\n", c.max_rel, (long long)c.max_rel_iter);
  std::printf("max absolute error:                  %.6f (iteration %lld)\n", c.max_abs, (long long)c.max_abs_iter);
  std::printf("relative error of the average loss:  %.6f\n", c.avg_loss_rel);
  const bool ok = c.within(tolerance);
  std::printf("verdict: %s (tolerance %g)\n", ok ? "WITHIN tolerance" : "BEYOND tolerance", tolerance);
  if (!plot.empty()) {
    std::ofstream f(plot);
    f << comparison_svg(c, run_a, run_b, tolerance);
    f.close();
    if (!f) throw cs::Error(fmt::format("[compare] cannot write --plot {}; Hint: check the folder exists and is writable", plot));
    std::printf("plot: %s\n", plot.c_str());
    const std::string png = std::filesystem::path(plot).replace_extension(".png").string();
    std::string why;
    if (png == plot) {  // --plot x.png: there is no second file to convert into
    } else if (render_png(plot, png, why)) std::printf("plot: %s\n", png.c_str());
    else if (!why.empty()) log_warn("[compare] rsvg-convert could not make {} from {} ({}); the SVG is written", png, plot, why);
  }
  return ok ? 0 : 3;
}

}  // namespace cs::cli
