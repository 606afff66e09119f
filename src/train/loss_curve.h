// Loss curves for `chuanspeed compare`: read from our metrics.jsonl or from a Megatron-LM /
// AscendSpeed training log (its " iteration N/ M | ... | lm loss: X |" lines), aligned by
// iteration and compared with the figures defined in docs/operations.md.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace cs {

// iteration -> lm loss. Throws cs::Error naming the file when it holds no loss at all or a
// malformed record.
std::map<int64_t, double> read_loss_curve(const std::string& path);

struct CurveComparison {
  std::vector<int64_t> iterations;   // aligned (present in both, within the range)
  std::vector<double> a, b, rel;     // losses and |a - b| / |a| per aligned iteration
  double mean_rel = 0, max_rel = 0, max_abs = 0, avg_loss_rel = 0;
  int64_t max_rel_iter = 0, max_abs_iter = 0;
  // Within tolerance: the mean relative error and the relative error of the average loss both
  // at most `tolerance`.
  bool within(double tolerance) const { return mean_rel <= tolerance && avg_loss_rel <= tolerance; }
};

// Compares B against the reference A over iterations [from, to]; an error when none align.
CurveComparison compare_curves(const std::map<int64_t, double>& a, const std::map<int64_t, double>& b,
                               int64_t from, int64_t to);

// A self-contained SVG: both curves on top, the relative error and the tolerance line below.
std::string comparison_svg(const CurveComparison& c, const std::string& name_a,
                           const std::string& name_b, double tolerance);

}  // namespace cs
