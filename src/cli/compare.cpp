// chuanspeed compare RUN_A RUN_B [--plot FILE.svg] [--from-iter N] [--to-iter M] [--tolerance T]
// The seed's "accuracy of the loss" check between two runs (A is the reference). Exit status:
// 0 within tolerance, 3 beyond it, 1 bad input, 2 usage.
#include <fmt/core.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>

#include "cli/commands.h"
#include "cli/parse.h"
#include "core/error.h"
#include "train/loss_curve.h"

namespace cs::cli {

namespace {
// A run directory means its metrics.jsonl.
std::string curve_file(const std::string& p) {
  return std::filesystem::is_directory(p) ? p + "/metrics.jsonl" : p;
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
  const auto a = read_loss_curve(curve_file(run_a)), b = read_loss_curve(curve_file(run_b));
  const CurveComparison c = compare_curves(a, b, from, to);
  std::printf("compared %zu iterations (%lld..%lld)\n", c.iterations.size(), (long long)c.iterations.front(),
              (long long)c.iterations.back());
  std::printf("mean relative error:                 %.6f\n", c.mean_rel);
  std::printf("max relative error:                  %.6f (iteration %lld)\n", c.max_rel, (long long)c.max_rel_iter);
  std::printf("max absolute error:                  %.6f (iteration %lld)\n", c.max_abs, (long long)c.max_abs_iter);
  std::printf("relative error of the average loss:  %.6f\n", c.avg_loss_rel);
  const bool ok = c.within(tolerance);
  std::printf("verdict: %s (tolerance %g)\n", ok ? "WITHIN tolerance" : "BEYOND tolerance", tolerance);
  if (!plot.empty()) {
    std::ofstream f(plot);
    f << comparison_svg(c, run_a, run_b, tolerance);
    if (!f) throw cs::Error(fmt::format("[compare] cannot write --plot {}", plot));
    f.close();
    std::printf("plot: %s\n", plot.c_str());
    if (std::system("command -v rsvg-convert > /dev/null 2>&1") == 0) {
      const std::string png = plot.substr(0, plot.rfind('.')) + ".png";
      if (std::system(("rsvg-convert -o '" + png + "' '" + plot + "'").c_str()) == 0) std::printf("plot: %s\n", png.c_str());
    }
  }
  return ok ? 0 : 3;
}

}  // namespace cs::cli
