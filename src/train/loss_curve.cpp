#include "train/loss_curve.h"

#include <fmt/core.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "core/error.h"

namespace cs {

std::map<int64_t, double> read_loss_curve(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw Error(fmt::format("[compare] {}: cannot open. Hint: pass a metrics.jsonl or a training log", path));
  // Megatron's line: " iteration      100/   10000 | ... | lm loss: 7.123456E+00 | ..."
  static const std::regex megatron(R"(iteration\s+(\d+)\s*/\s*\d+\s*\|.*?lm loss:\s*([-+0-9.eEnaNinfINF]+))");
  std::map<int64_t, double> curve;
  std::string line;
  int64_t lineno = 0;
  while (std::getline(f, line)) {
    ++lineno;
    if (!line.empty() && line[0] == '{') {
      const auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.contains("iteration"))
        throw Error(fmt::format("[compare] {}:{}: not a metrics record (JSON with \"iteration\" and \"lm_loss\")", path, lineno));
      if (j.contains("lm_loss") && j["lm_loss"].is_number())
        curve[j["iteration"].get<int64_t>()] = j["lm_loss"].get<double>();
      continue;
    }
    std::smatch m;
    if (std::regex_search(line, m, megatron)) curve[std::stoll(m[1])] = std::stod(m[2]);
  }
  if (curve.empty())
    throw Error(fmt::format("[compare] {}: no losses found (expected metrics.jsonl records or Megatron "
                            "'iteration N/ M | ... | lm loss: X' lines)", path));
  return curve;
}

CurveComparison compare_curves(const std::map<int64_t, double>& a, const std::map<int64_t, double>& b,
                               int64_t from, int64_t to) {
  CurveComparison c;
  double sum_a = 0, sum_b = 0, sum_rel = 0;
  for (const auto& [it, la] : a) {
    if (it < from || it > to) continue;
    auto jt = b.find(it);
    if (jt == b.end() || !std::isfinite(la) || !std::isfinite(jt->second)) continue;
    const double lb = jt->second, abs_err = std::fabs(la - lb);
    const double rel = la != 0 ? abs_err / std::fabs(la) : (abs_err == 0 ? 0 : INFINITY);
    c.iterations.push_back(it);
    c.a.push_back(la);
    c.b.push_back(lb);
    c.rel.push_back(rel);
    sum_a += la;
    sum_b += lb;
    sum_rel += rel;
    if (rel > c.max_rel || c.iterations.size() == 1) { c.max_rel = rel; c.max_rel_iter = it; }
    if (abs_err > c.max_abs || c.iterations.size() == 1) { c.max_abs = abs_err; c.max_abs_iter = it; }
  }
  if (c.iterations.empty())
    throw Error(fmt::format("[compare] the two runs share no iteration in [{}, {}] with finite losses "
                            "(A: {}..{}, B: {}..{}). Hint: check --from-iter / --to-iter and the log intervals",
                            from, to, a.begin()->first, a.rbegin()->first, b.begin()->first, b.rbegin()->first));
  const double n = double(c.iterations.size());
  c.mean_rel = sum_rel / n;
  c.avg_loss_rel = sum_a != 0 ? std::fabs(sum_a - sum_b) / std::fabs(sum_a) : 0;
  return c;
}

namespace {
std::string polyline(const std::vector<int64_t>& x, const std::vector<double>& y, double x0, double x1,
                     double y0, double y1, double left, double top, double w, double h, const char* color) {
  std::string pts;
  for (size_t i = 0; i < x.size(); ++i) {
    const double px = left + (x1 > x0 ? (double(x[i]) - x0) / (x1 - x0) : 0.5) * w;
    const double py = top + h - (y1 > y0 ? (std::min(y[i], y1) - y0) / (y1 - y0) : 0.5) * h;
    pts += fmt::format("{:.1f},{:.1f} ", px, py);
  }
  return fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"/>\n", color, pts);
}

std::string panel(double left, double top, double w, double h, double x0, double x1, double y0,
                  double y1, const std::string& title) {
  std::string s = fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#888\"/>\n",
                              left, top, w, h);
  s += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"13\">{}</text>\n", left, top - 6, title);
  for (int k = 0; k <= 4; ++k) {
    const double fy = y0 + (y1 - y0) * k / 4, py = top + h - h * k / 4;
    const double fx = x0 + (x1 - x0) * k / 4, px = left + w * k / 4;
    s += fmt::format("<text x=\"{}\" y=\"{:.1f}\" font-size=\"10\" text-anchor=\"end\">{:.4g}</text>\n", left - 4, py + 3, fy);
    s += fmt::format("<text x=\"{:.1f}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{:.0f}</text>\n", px, top + h + 13, fx);
  }
  return s;
}
}  // namespace

std::string comparison_svg(const CurveComparison& c, const std::string& name_a,
                           const std::string& name_b, double tolerance) {
  const double w = 720, h = 220, left = 70, x0 = double(c.iterations.front()), x1 = double(c.iterations.back());
  double lo = INFINITY, hi = -INFINITY;
  for (size_t i = 0; i < c.a.size(); ++i) lo = std::min({lo, c.a[i], c.b[i]}), hi = std::max({hi, c.a[i], c.b[i]});
  const double rel_hi = std::max(tolerance * 1.5, c.max_rel * 1.1);
  std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"820\" height=\"600\" font-family=\"sans-serif\">\n"
                  "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s += panel(left, 40, w, h, x0, x1, lo, hi, "lm loss by iteration");
  s += polyline(c.iterations, c.a, x0, x1, lo, hi, left, 40, w, h, "#1f77b4");
  s += polyline(c.iterations, c.b, x0, x1, lo, hi, left, 40, w, h, "#d62728");
  s += fmt::format("<text x=\"{}\" y=\"30\" font-size=\"12\" fill=\"#1f77b4\">A: {}</text>\n", left + 200, name_a);
  s += fmt::format("<text x=\"{}\" y=\"30\" font-size=\"12\" fill=\"#d62728\">B: {}</text>\n", left + 460, name_b);
  s += panel(left, 330, w, h, x0, x1, 0, rel_hi, fmt::format("relative error |A - B| / |A| (tolerance {})", tolerance));
  s += polyline(c.iterations, c.rel, x0, x1, 0, rel_hi, left, 330, w, h, "#2ca02c");
  const double ty = 330 + h - tolerance / rel_hi * h;
  s += fmt::format("<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#ff7f0e\" stroke-dasharray=\"6,4\"/>\n",
                   left, ty, left + w, ty);
  s += fmt::format("<text x=\"{}\" y=\"585\" font-size=\"12\">mean relative error {:.5f}, max {:.5f} at iteration {}, "
                   "relative error of the average loss {:.5f}</text>\n", left, c.mean_rel, c.max_rel, c.max_rel_iter, c.avg_loss_rel);
  return s + "</svg>\n";
}

}  // namespace cs
