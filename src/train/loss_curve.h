// Loss curves for `chuanspeed compare`: read from our metrics.jsonl or from a Megatron-LM /
// AscendSpeed training log (its " iteration N/ M | ... | lm loss: X |" lines), aligned by
// iteration and compared with the figures defined in docs/operations.md.
#pragma once
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace cs {

struct LossCurve {
  std::map<int64_t, double> loss;   // iteration -> lm loss; NaN / inf kept (a diverged run)
  // Iterations logged without a loss because every iteration of their interval was skipped (fp16
  // loss scale overflow; Megatron's line then has no "lm loss", our metrics record no "lm_loss").
  std::set<int64_t> skipped;
  std::vector<std::string> notes;   // what the reader tolerated: repeated iterations, a half-written last line
};

// A file whose name ends in .jsonl / .json, or whose first non-blank line is a JSON object with
// "iteration", is read as JSON lines (records without "lm_loss" and "skipped_iterations", e.g.
// validation ones, are skipped); anything else as a training log, where lines other than iteration lines are ignored.
// Throws cs::Error "[compare] FILE:LINE: expected ...; Hint: ..." for a malformed record or value,
// and when the file holds no loss at all.
LossCurve read_loss_curve(const std::string& path);

// Denominator floor of the relative errors: a reference loss of exactly 0 keeps them finite.
inline constexpr double kRelativeErrorFloor = 1e-12;

struct CurveComparison {
  std::vector<int64_t> iterations;   // compared: in both runs, within the range, not both non-finite
  std::vector<double> a, b, rel;     // losses and |a - b| / max(|a|, floor) per compared iteration
  double mean_rel = 0, max_rel = 0, max_abs = 0, avg_loss_rel = 0;
  int64_t max_rel_iter = 0, max_abs_iter = 0;
  int64_t both_nonfinite = 0;        // iterations skipped: the loss is NaN / inf in both runs
  int64_t one_nonfinite = 0;         // compared iterations where only one loss is finite (r = inf)
  int64_t skipped_intervals = 0;     // iterations not compared: a run skipped every step of the interval
  // Within tolerance: the mean relative error and the relative error of the average loss both
  // at most `tolerance` (an infinite or NaN figure never is).
  bool within(double tolerance) const { return mean_rel <= tolerance && avg_loss_rel <= tolerance; }
};

// Compares B against the reference A over iterations [from, to]. Throws cs::Error (exit 1) when
// the two runs do not log the same iterations there, naming both ranges and the common one.
// Iterations where either run logged a skipped interval are not compared (counted instead).
CurveComparison compare_curves(const LossCurve& a, const LossCurve& b, int64_t from, int64_t to);
CurveComparison compare_curves(const std::map<int64_t, double>& a, const std::map<int64_t, double>& b,
                               int64_t from, int64_t to);

// A self-contained SVG: both curves on top, the relative error and the tolerance line below.
// Names are XML-escaped; non-finite points leave gaps (losses) or sit on the top edge (errors).
std::string comparison_svg(const CurveComparison& c, const std::string& name_a,
                           const std::string& name_b, double tolerance);

// `s` with & < > " ' as XML entities and control characters as '?'.
std::string xml_escape(const std::string& s);

}  // namespace cs
