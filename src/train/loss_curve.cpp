#include "train/loss_curve.h"

#include <fmt/core.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string_view>

#include "core/error.h"
#include "core/file_io.h"

namespace cs {

namespace {

// A loss value: a decimal or E-notation number, or nan / inf / -inf in any case (our log and
// Megatron's '{:.6E}' print NaN as "NAN"). The whole token must be the number.
bool parse_loss(std::string_view tok, double& out) {
  if (!tok.empty() && tok[0] == '+') tok.remove_prefix(1);
  if (tok.empty()) return false;
  const auto [end, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), out);
  return ec == std::errc() && end == tok.data() + tok.size();
}

// An iteration: decimal digits that fit in int64_t.
bool parse_iteration(std::string_view tok, int64_t& out) {
  if (tok.empty() || !std::all_of(tok.begin(), tok.end(), [](char c) { return c >= '0' && c <= '9'; })) return false;
  const auto [end, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), out);
  return ec == std::errc() && end == tok.data() + tok.size();
}

// At most 60 characters of `s`, for an error message.
std::string excerpt(std::string_view s) {
  return s.size() <= 60 ? std::string(s) : std::string(s.substr(0, 57)) + "...";
}

bool is_space(char c) { return c == ' ' || c == '\t'; }

// Python's json.dumps writes NaN / Infinity / -Infinity bare, which is not JSON: quote them
// (outside strings) so the record parses and the value reads as non-finite.
std::string quote_bare_nonfinite(const std::string& s) {
  std::string out;
  bool in_string = false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < s.size()) out += s[++i];
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    bool quoted = false;
    for (const std::string_view w : {"-Infinity", "Infinity", "NaN"})
      if (s.compare(i, w.size(), w) == 0) {
        out += '"', out += w, out += '"', i += w.size() - 1, quoted = true;
        break;
      }
    if (!quoted) out += c;
  }
  return out;
}

nlohmann::json parse_json_line(const std::string& line) {
  auto j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded() && (line.find("NaN") != std::string::npos || line.find("Infinity") != std::string::npos))
    j = nlohmann::json::parse(quote_bare_nonfinite(line), nullptr, false);
  return j;
}

// The count N of a " NAME: N |" field in `line` from position `from`: false when the field is
// absent or not a complete count followed by '|' (a line cut short while being written).
bool count_field(std::string_view line, size_t from, std::string_view name, int64_t& n) {
  const size_t f = line.find(name, from);
  if (f == std::string_view::npos) return false;
  size_t q = f + name.size();
  while (q < line.size() && is_space(line[q])) ++q;
  const size_t d0 = q;
  while (q < line.size() && line[q] >= '0' && line[q] <= '9') ++q;
  const std::string_view digits = line.substr(d0, q - d0);
  while (q < line.size() && is_space(line[q])) ++q;
  return q < line.size() && line[q] == '|' && parse_iteration(digits, n);
}

// Megatron's (and our stdout's) line: " iteration      100/   10000 | ... | lm loss: 7.123456E+00 | ...".
// Plain scanning, not std::regex: libstdc++'s regex recurses per character and overflows the
// stack on long lines. Returns false for a line that is not an iteration line with an lm loss
// or a complete line without one; sets `bad` to an error description when it is one but a value
// does not parse, and `cut` when the line ends right after the loss (it may have been cut short
// while being written).
// Megatron leaves "lm loss" out of a line whose average is not positive: an interval where every
// iteration was skipped (fp16 overflow: nothing to average; `skipped` is set) or whose average is
// NaN (a diverged run that counts no nan iteration; read as NaN). The skipped and nan counts of
// the line tell the two apart.
bool scan_log_line(std::string_view line, int64_t& it, double& loss, bool& skipped, std::string& bad, bool& cut) {
  for (size_t p = line.find("iteration"); p != std::string_view::npos; p = line.find("iteration", p)) {
    size_t q = p += 9;
    if (q >= line.size() || !is_space(line[q])) continue;
    while (q < line.size() && is_space(line[q])) ++q;
    const size_t d0 = q;
    while (q < line.size() && line[q] >= '0' && line[q] <= '9') ++q;
    const std::string_view digits = line.substr(d0, q - d0);
    while (q < line.size() && is_space(line[q])) ++q;
    if (digits.empty() || q >= line.size() || line[q] != '/') continue;
    const size_t l = line.find("lm loss:", q);
    if (l == std::string_view::npos) {
      int64_t n_skipped = 0, n_nan = 0;
      if (!count_field(line, q, "number of skipped iterations:", n_skipped) ||
          !count_field(line, q, "number of nan iterations:", n_nan))
        return false;
      if (!parse_iteration(digits, it))
        bad = fmt::format("expected an iteration number below 2^63, got '{}'", excerpt(digits));
      skipped = n_skipped > 0 && n_nan == 0;
      loss = NAN;
      return true;
    }
    size_t v0 = l + 8;
    while (v0 < line.size() && is_space(line[v0])) ++v0;
    size_t v1 = v0;
    while (v1 < line.size() && !is_space(line[v1]) && line[v1] != '|') ++v1;
    const std::string_view value = line.substr(v0, v1 - v0);
    cut = v1 == line.size();
    if (!parse_iteration(digits, it))
      bad = fmt::format("expected an iteration number below 2^63, got '{}'", excerpt(digits));
    else if (!parse_loss(value, loss))
      bad = fmt::format("expected a number, nan or inf after 'lm loss:', got '{}'", excerpt(value));
    return true;
  }
  return false;
}

// The iteration of a JSON record, or an error description in `bad`.
int64_t json_iteration(const nlohmann::json& v, std::string& bad) {
  if (v.is_number_unsigned() && v.get<uint64_t>() <= uint64_t(INT64_MAX)) return int64_t(v.get<uint64_t>());
  if (v.is_number_integer() && v.get<int64_t>() >= 0) return v.get<int64_t>();
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (d >= 0 && d < 9223372036854775808.0 && d == std::floor(d)) return int64_t(d);
  }
  bad = fmt::format("expected \"iteration\" to be a whole number from 0 to 2^63-1, got {}", excerpt(v.dump()));
  return 0;
}

// A metrics record without "lm_loss" that is a training record (it has "skipped_iterations"):
// every iteration of its interval skipped (true), or a NaN average (false, as in a log line).
// Returns false for other records (validation ones).
bool json_no_loss(const nlohmann::json& j, bool& skipped) {
  const auto count = [&](const char* key) {
    const auto f = j.find(key);
    return f != j.end() && f->is_number() ? f->get<double>() : 0.0;
  };
  if (!j.contains("skipped_iterations")) return false;
  skipped = count("skipped_iterations") > 0 && count("nan_iterations") == 0;
  return true;
}

// The lm_loss of a JSON record: a number; null (nlohmann writes NaN / inf as null, so a diverged
// run of ours reads as NaN); or a string such as "NaN" / "inf".
double json_loss(const nlohmann::json& v, std::string& bad) {
  double x = NAN;
  if (v.is_number()) return v.get<double>();
  if (v.is_null()) return NAN;
  if (v.is_string() && parse_loss(v.get<std::string>(), x)) return x;
  bad = fmt::format("expected \"lm_loss\" to be a number, null, \"nan\" or \"inf\", got {}", excerpt(v.dump()));
  return x;
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

LossCurve read_loss_curve(const std::string& path) {
  require_regular_file(path, "compare", "pass a metrics.jsonl, a run directory or a training log");
  std::ifstream f(path);
  if (!f) throw Error(fmt::format("[compare] {}: cannot open. Hint: pass a metrics.jsonl, a run directory or a training log", path));
  enum class Mode { kUnknown, kJson, kLog } mode = ends_with(path, ".jsonl") || ends_with(path, ".json") ? Mode::kJson : Mode::kUnknown;
  LossCurve curve;
  int64_t lineno = 0, repeated = 0, first_repeat = 0, last_repeat = 0;
  std::string line;
  auto fail = [&](const std::string& what, const char* hint) {
    throw Error(fmt::format("[compare] {}:{}: {}; Hint: {}", path, lineno, what, hint));
  };
  while (std::getline(f, line)) {
    ++lineno;
    // getline stopping at end of file rather than at '\n': the writer may be mid-line.
    const bool unterminated = f.eof();
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    nlohmann::json j;
    if (mode != Mode::kLog) j = parse_json_line(line);
    if (mode == Mode::kUnknown)
      mode = j.is_object() && j.contains("iteration") ? Mode::kJson : Mode::kLog;
    int64_t it = 0;
    double loss = NAN;
    bool skipped = false;
    std::string bad;
    if (mode == Mode::kJson) {
      if (!j.is_object() || !j.contains("iteration")) {
        if (unterminated) {
          curve.notes.push_back(fmt::format("{}:{}: the last line is incomplete (a run still writing?); ignored", path, lineno));
          break;
        }
        fail(fmt::format("expected a JSON metrics record like {{\"iteration\": 10, \"lm_loss\": 2.5}}, got '{}'", excerpt(line)),
             "the file is read as JSON lines (its name or first line says so); fix or delete this line");
      }
      if (!j.contains("lm_loss") && !json_no_loss(j, skipped)) continue;  // validation and other records
      it = json_iteration(j["iteration"], bad);
      if (bad.empty() && j.contains("lm_loss")) loss = json_loss(j["lm_loss"], bad);
      if (!bad.empty()) fail(bad, "fix or delete this record");
    } else {
      bool cut = false;
      if (!scan_log_line(line, it, loss, skipped, bad, cut)) continue;
      if (unterminated && (cut || !bad.empty())) {
        curve.notes.push_back(fmt::format("{}:{}: the last iteration line is incomplete (a run still writing?); ignored", path, lineno));
        break;
      }
      if (!bad.empty()) fail(bad, "fix or delete this line of the log");
    }
    const bool seen = curve.loss.erase(it) + curve.skipped.erase(it) > 0;
    if (skipped) curve.skipped.insert(it);
    else curve.loss.emplace(it, loss);
    if (seen) {
      if (repeated++ == 0) first_repeat = it;
      last_repeat = it;
    }
  }
  if (repeated > 0)
    curve.notes.push_back(fmt::format("{}: {} iteration(s) logged more than once (first {}, last {}; a resumed run?): "
                                      "the last value of each is used", path, repeated, first_repeat, last_repeat));
  if (curve.loss.empty() && !curve.skipped.empty())
    throw Error(fmt::format("[compare] {}: no losses found: each of its {} training records is an interval where every "
                            "iteration was skipped (fp16 loss scale overflow); Hint: compare a longer run, or check "
                            "its --initial-loss-scale", path, curve.skipped.size()));
  if (curve.loss.empty())
    throw Error(fmt::format("[compare] {}: no losses found; expected metrics.jsonl records {{\"iteration\": N, \"lm_loss\": X}} "
                            "or training log lines ' iteration N/ M | ... | lm loss: X |'; Hint: check the file is the run's log", path));
  return curve;
}

namespace {
struct Window {
  int64_t n = 0, first = 0, last = 0;
};

Window window_of(const std::map<int64_t, double>& m, int64_t from, int64_t to) {
  Window w;
  for (auto i = m.lower_bound(from); i != m.end() && i->first <= to; ++i) {
    if (w.n++ == 0) w.first = i->first;
    w.last = i->first;
  }
  return w;
}

std::string describe(const Window& w) {
  return w.n == 0 ? "none" : fmt::format("{} iteration(s), {}..{}", w.n, w.first, w.last);
}

// Whether a and b log exactly the same iterations within [from, to].
bool same_iterations(const std::map<int64_t, double>& a, const std::map<int64_t, double>& b, int64_t from, int64_t to) {
  auto i = a.lower_bound(from), j = b.lower_bound(from);
  for (;; ++i, ++j) {
    const bool ea = i == a.end() || i->first > to, eb = j == b.end() || j->first > to;
    if (ea || eb) return ea && eb;
    if (i->first != j->first) return false;
  }
}

// A run that stopped early, diverged into silence or logs at another interval must not pass on
// the iterations it happens to share: a mismatch is an error naming both ranges.
[[noreturn]] void throw_mismatch(const std::map<int64_t, double>& a, const std::map<int64_t, double>& b,
                                 int64_t from, int64_t to) {
  const Window wa = window_of(a, from, to), wb = window_of(b, from, to);
  const std::string where = from == 0 && to == INT64_MAX ? "" : fmt::format(" in [{}, {}]", from, to);
  int64_t common = 0;
  for (auto i = a.lower_bound(from); i != a.end() && i->first <= to; ++i) common += b.count(i->first);
  const int64_t c0 = std::max(wa.first, wb.first), c1 = std::min(wa.last, wb.last);
  std::string hint;
  if (common == 0)
    hint = "check that both files are the runs meant and the --from-iter / --to-iter range";
  else if (same_iterations(a, b, c0, c1))
    hint = fmt::format("to compare only the common range, pass --from-iter {} --to-iter {}", c0, c1);
  else
    hint = "the runs log at different iterations (another --log-interval?); compare runs logged at the same iterations";
  throw Error(fmt::format("[compare] the two runs {}{}: A has {}, B has {}, {} in common; expected the same iterations; Hint: {}",
                          common == 0 ? "share no iteration" : "log different iterations", where, describe(wa),
                          describe(wb), common, hint));
}
}  // namespace

CurveComparison compare_curves(const std::map<int64_t, double>& a, const std::map<int64_t, double>& b,
                               int64_t from, int64_t to) {
  LossCurve ca, cb;
  ca.loss = a;
  cb.loss = b;
  return compare_curves(ca, cb, from, to);
}

CurveComparison compare_curves(const LossCurve& ca, const LossCurve& cb, int64_t from, int64_t to) {
  // Every logged iteration, losses and skipped intervals alike, must be the same in both runs.
  auto logged = [](const LossCurve& c) {
    std::map<int64_t, double> m = c.loss;
    for (const int64_t it : c.skipped) m.emplace(it, NAN);
    return m;
  };
  const std::map<int64_t, double> a = logged(ca), b = logged(cb);
  if (!same_iterations(a, b, from, to) || window_of(a, from, to).n == 0) throw_mismatch(a, b, from, to);
  CurveComparison c;
  double sum_a = 0, sum_b = 0, sum_rel = 0;
  for (auto i = a.lower_bound(from); i != a.end() && i->first <= to; ++i) {
    const int64_t it = i->first;
    if (ca.skipped.count(it) || cb.skipped.count(it)) {  // no loss to compare: not a divergence either
      ++c.skipped_intervals;
      continue;
    }
    const double la = i->second, lb = b.at(it);
    const bool fa = std::isfinite(la), fb = std::isfinite(lb);
    if (!fa && !fb) {  // both diverged here: nothing to compare, counted in a note
      ++c.both_nonfinite;
      continue;
    }
    // One finite loss against NaN / inf is as far apart as losses get.
    const double abs_err = fa && fb ? std::fabs(la - lb) : INFINITY;
    const double rel = fa && fb ? abs_err / std::max(std::fabs(la), kRelativeErrorFloor) : INFINITY;
    if (fa && fb) sum_a += la, sum_b += lb;
    else ++c.one_nonfinite;
    c.iterations.push_back(it);
    c.a.push_back(la);
    c.b.push_back(lb);
    c.rel.push_back(rel);
    sum_rel += rel;
    // Strict '>' keeps the first iteration where an infinite error appears.
    if (rel > c.max_rel || c.iterations.size() == 1) { c.max_rel = rel; c.max_rel_iter = it; }
    if (abs_err > c.max_abs || c.iterations.size() == 1) { c.max_abs = abs_err; c.max_abs_iter = it; }
  }
  if (c.iterations.empty())
    throw Error(fmt::format("[compare] no iteration in [{}, {}] has a loss to compare ({} with the loss NaN or inf in both runs, "
                            "{} where a run skipped every step of the interval); expected finite losses to compare; Hint: compare "
                            "another range with --from-iter / --to-iter", from, to, c.both_nonfinite, c.skipped_intervals));
  c.mean_rel = sum_rel / double(c.iterations.size());
  c.avg_loss_rel = c.one_nonfinite > 0 ? INFINITY : std::fabs(sum_a - sum_b) / std::max(std::fabs(sum_a), kRelativeErrorFloor);
  return c;
}

std::string xml_escape(const std::string& s) {
  std::string out;
  for (const char ch : s) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += (unsigned char)ch < 0x20 ? '?' : ch;  // control characters are not allowed in XML 1.0
    }
  }
  return out;
}

namespace {
// One polyline per run of points; NaN leaves a gap, +-inf and values beyond the panel sit on its edge.
std::string polyline(const std::vector<int64_t>& x, const std::vector<double>& y, double x0, double x1,
                     double y0, double y1, double left, double top, double w, double h, const char* color) {
  std::string out, pts;
  auto flush = [&] {
    if (!pts.empty())
      out += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"/>\n", color, pts);
    pts.clear();
  };
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(y[i])) {
      flush();
      continue;
    }
    const double v = std::clamp(y[i], y0, y1);
    const double px = left + (x1 > x0 ? (double(x[i]) - x0) / (x1 - x0) : 0.5) * w;
    const double py = top + h - (y1 > y0 ? (v - y0) / (y1 - y0) : 0.5) * h;
    pts += fmt::format("{:.1f},{:.1f} ", px, py);
  }
  flush();
  return out;
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
  // Axes from the finite values only: a NaN / inf loss or an infinite error would blank the plot.
  double lo = INFINITY, hi = -INFINITY, rel_max = 0;
  for (size_t i = 0; i < c.a.size(); ++i) {
    for (const double v : {c.a[i], c.b[i]})
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
    if (std::isfinite(c.rel[i])) rel_max = std::max(rel_max, c.rel[i]);
  }
  if (lo > hi) lo = 0, hi = 1;
  const double rel_hi = std::max(tolerance * 1.5, rel_max * 1.1);
  std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"820\" height=\"600\" font-family=\"sans-serif\">\n"
                  "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s += panel(left, 40, w, h, x0, x1, lo, hi, "lm loss by iteration");
  s += polyline(c.iterations, c.a, x0, x1, lo, hi, left, 40, w, h, "#1f77b4");
  s += polyline(c.iterations, c.b, x0, x1, lo, hi, left, 40, w, h, "#d62728");
  s += fmt::format("<text x=\"{}\" y=\"30\" font-size=\"12\" fill=\"#1f77b4\">A: {}</text>\n", left + 200, xml_escape(name_a));
  s += fmt::format("<text x=\"{}\" y=\"30\" font-size=\"12\" fill=\"#d62728\">B: {}</text>\n", left + 460, xml_escape(name_b));
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
