// Loss curves for `chuanspeed compare`: reading (non-finite values in any case, one-line errors
// naming FILE:LINE, long lines, dict lines in a log, a half-written last line, repeated
// iterations, intervals logged without a loss), comparing (runs logging different iterations, NaN
// in one or both runs, skipped intervals, a zero reference loss) and the SVG (escaped names, no NaN coordinates).
#include <fmt/core.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "core/error.h"
#include "train/loss_curve.h"

namespace cs {
namespace {

std::string write(const std::string& name, const std::string& text) {
  const std::string p = ::testing::TempDir() + "/cs_loss_curve_" + std::to_string(getpid()) + "_" + name;
  std::ofstream(p) << text;
  return p;
}

std::string log_line(int64_t it, const std::string& loss) {
  return " iteration " + std::to_string(it) + "/     100 | consumed samples: 8 | lm loss: " + loss + " | loss scale: 1.0 |\n";
}

// The cs::Error message of reading `path`, or "" when it reads.
std::string read_error(const std::string& path) {
  try {
    read_loss_curve(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::string compare_error(const std::map<int64_t, double>& a, const std::map<int64_t, double>& b,
                          int64_t from = 0, int64_t to = INT64_MAX) {
  try {
    compare_curves(a, b, from, to);
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 1);
    return e.what();
  }
  return "";
}

TEST(LossCurve, NonFiniteLossesReadInAnyCase) {
  const auto log = read_loss_curve(write("nan.log", log_line(1, "NAN") + log_line(2, "nan") + log_line(3, "-INF") +
                                                        log_line(4, "inf") + log_line(5, "Infinity") + log_line(6, "+1.5E+00")));
  ASSERT_EQ(log.loss.size(), 6u);
  EXPECT_TRUE(std::isnan(log.loss.at(1)) && std::isnan(log.loss.at(2)));
  EXPECT_EQ(log.loss.at(3), -INFINITY);
  EXPECT_EQ(log.loss.at(4), INFINITY);
  EXPECT_EQ(log.loss.at(5), INFINITY);
  EXPECT_EQ(log.loss.at(6), 1.5);
  // Our writer stores NaN as null; Python's json.dumps writes a bare NaN / Infinity.
  const auto js = read_loss_curve(write("nan.jsonl",
      "{\"iteration\": 1, \"lm_loss\": null}\n{\"iteration\": 2, \"lm_loss\": \"NaN\"}\n"
      "{\"iteration\": 3, \"lm_loss\": NaN, \"note\": \"NaN here\"}\n{\"iteration\": 4, \"lm_loss\": -Infinity}\n"
      "{\"iteration\": 5.0, \"lm_loss\": 2}\n"));
  ASSERT_EQ(js.loss.size(), 5u);
  EXPECT_TRUE(std::isnan(js.loss.at(1)) && std::isnan(js.loss.at(2)) && std::isnan(js.loss.at(3)));
  EXPECT_EQ(js.loss.at(4), -INFINITY);
  EXPECT_EQ(js.loss.at(5), 2.0);
}

TEST(LossCurve, UnreadableValuesAreOneLineErrorsNamingFileAndLine) {
  struct Case {
    std::string name, text, expect;
  };
  const std::string ok = log_line(1, "2.0");
  const std::vector<Case> cases = {
      {"na.log", ok + log_line(2, "N/A"), ":2: expected a number, nan or inf after 'lm loss:', got 'N/A'"},
      {"dash.log", ok + log_line(2, "-"), ":2: expected a number, nan or inf after 'lm loss:', got '-'"},
      {"empty.log", ok + " iteration 2/ 9 | lm loss: | x |\n", ":2: expected a number, nan or inf after 'lm loss:', got ''"},
      {"huge.log", ok + " iteration 99999999999999999999/ 9 | lm loss: 1.0 |\n",
       ":2: expected an iteration number below 2^63, got '99999999999999999999'"},
      {"str.jsonl", "{\"iteration\": \"1\", \"lm_loss\": 2}\n", ":1: expected \"iteration\" to be a whole number"},
      {"frac.jsonl", "{\"iteration\": 1.7, \"lm_loss\": 2}\n", ":1: expected \"iteration\" to be a whole number from 0 to 2^63-1, got 1.7"},
      {"neg.jsonl", "{\"iteration\": -1, \"lm_loss\": 2}\n", ":1: expected \"iteration\" to be a whole number"},
      {"big.jsonl", "{\"iteration\": 9223372036854775808, \"lm_loss\": 2}\n", ":1: expected \"iteration\" to be a whole number"},
      {"bool.jsonl", "{\"iteration\": 1, \"lm_loss\": true}\n", ":1: expected \"lm_loss\" to be a number, null"},
      {"noit.jsonl", "{\"lm_loss\": 2}\n", ":1: expected a JSON metrics record"},
  };
  for (const Case& c : cases) {
    const std::string path = write(c.name, c.text), e = read_error(path);
    EXPECT_NE(e.find("[compare] " + path + c.expect), std::string::npos) << c.name << ": " << e;
    EXPECT_NE(e.find("; Hint: "), std::string::npos) << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  }
}

TEST(LossCurve, LongLinesAreScannedWithoutRecursion) {
  // std::regex's ".*?" overflowed the stack (SIGSEGV) on a 50,000-character line.
  const std::string pad(50000, 'x');
  const auto c = read_loss_curve(write("long.log", " iteration 1/ 2 | " + pad + " | lm loss: 1.5E+00 |\n" + pad + "\n" +
                                                       " iteration 2/ 2 | lm loss: 1.25 | " + pad + "\n"));
  EXPECT_EQ(c.loss, (std::map<int64_t, double>{{1, 1.5}, {2, 1.25}}));
}

TEST(LossCurve, LogWithDictLinesIsReadAsALog) {
  const auto c = read_loss_curve(write("dicts.log",
      "{'fp16': {'enabled': True}}\n{\"iteration\": \"config\"}\n" + log_line(10, "3.0") +
      "[Rank 0] (after 10 iterations) memory (MB) | allocated: 1.0\n"
      " validation loss at iteration 10 | lm loss value: 9.0E+00 | lm loss PPL: 1.0E+04 |\n"
      "{'train_iters': 20}\n" + log_line(20, "2.0")));
  EXPECT_EQ(c.loss, (std::map<int64_t, double>{{10, 3.0}, {20, 2.0}}));
  EXPECT_TRUE(c.notes.empty());
}

TEST(LossCurve, HalfWrittenLastLineIsANoteButABadMiddleLineAnError) {
  const std::string good = "{\"iteration\": 1, \"lm_loss\": 3}\n{\"iteration\": 2, \"valid_lm_loss\": 3, \"valid_ppl\": 20}\n";
  const std::string live = write("live.jsonl", good + "{\"iteration\": 3, \"lm_");
  const auto c = read_loss_curve(live);
  EXPECT_EQ(c.loss, (std::map<int64_t, double>{{1, 3.0}}));  // the validation record is skipped
  ASSERT_EQ(c.notes.size(), 1u);
  EXPECT_NE(c.notes[0].find(live + ":3: the last line is incomplete"), std::string::npos) << c.notes[0];
  const std::string mid = write("mid.jsonl", good + "{\"iteration\": 3, \"lm_\n{\"iteration\": 4, \"lm_loss\": 3}\n");
  EXPECT_NE(read_error(mid).find(mid + ":3: expected a JSON metrics record"), std::string::npos) << read_error(mid);
  // A complete malformed last line is not a writer mid-record.
  const std::string end = write("end.jsonl", good + "{oops\n");
  EXPECT_NE(read_error(end).find(end + ":3: expected a JSON metrics record"), std::string::npos) << read_error(end);
  // A log cut after the loss's digits is ignored; a last line merely lacking its '\n' is read.
  const std::string cut = write("cut.log", log_line(1, "2.0") + " iteration 2/ 9 | lm loss: 1.23");
  EXPECT_EQ(read_loss_curve(cut).loss, (std::map<int64_t, double>{{1, 2.0}}));
  EXPECT_NE(read_loss_curve(cut).notes.at(0).find(cut + ":2: the last iteration line is incomplete"), std::string::npos);
  const std::string whole = write("whole.log", log_line(1, "2.0") + " iteration 2/ 9 | lm loss: 1.25 |");
  EXPECT_EQ(read_loss_curve(whole).loss, (std::map<int64_t, double>{{1, 2.0}, {2, 1.25}}));
}

TEST(LossCurve, RepeatedIterationsKeepTheLastValueWithANote) {
  const std::string p = write("resumed.log", log_line(1, "3") + log_line(2, "2") + log_line(3, "1.5") + log_line(2, "2.5") +
                                                 log_line(3, "1.25") + log_line(4, "1"));
  const auto c = read_loss_curve(p);
  EXPECT_EQ(c.loss, (std::map<int64_t, double>{{1, 3}, {2, 2.5}, {3, 1.25}, {4, 1}}));
  ASSERT_EQ(c.notes.size(), 1u);
  EXPECT_NE(c.notes[0].find("2 iteration(s) logged more than once (first 2, last 3"), std::string::npos) << c.notes[0];
}

std::map<int64_t, double> steady(int64_t first, int64_t last, int64_t step = 1) {
  std::map<int64_t, double> m;
  for (int64_t i = first; i <= last; i += step) m[i] = 1.0 + 1.0 / double(i);
  return m;
}

TEST(LossCurve, RunsLoggingDifferentIterationsAreErrors) {
  const auto a = steady(1, 200);
  std::string e = compare_error(a, steady(1, 5));  // B stopped early
  EXPECT_NE(e.find("log different iterations: A has 200 iteration(s), 1..200, B has 5 iteration(s), 1..5, 5 in common"),
            std::string::npos) << e;
  EXPECT_NE(e.find("Hint: to compare only the common range, pass --from-iter 1 --to-iter 5"), std::string::npos) << e;
  EXPECT_EQ(compare_curves(a, steady(1, 5), 1, 5).iterations.size(), 5u);
  e = compare_error(a, steady(10, 200, 10));
  EXPECT_NE(e.find("another --log-interval?"), std::string::npos) << e;
  e = compare_error(a, steady(300, 400), 0, 1000);
  EXPECT_NE(e.find("share no iteration in [0, 1000]: A has 200 iteration(s), 1..200, B has 101 iteration(s), 300..400"),
            std::string::npos) << e;
  auto gap = a;
  gap.erase(50);
  EXPECT_NE(compare_error(a, gap).find("199 in common"), std::string::npos);
  EXPECT_EQ(compare_error(a, gap, 60, 200), "");  // outside the window a gap does not matter
}

TEST(LossCurve, ALossNonFiniteInOneRunIsBeyondToleranceAndInBothIsSkipped) {
  const auto a = steady(1, 200);
  auto b = a;
  for (int64_t i = 101; i <= 200; ++i) b[i] = NAN;  // diverged half way
  const CurveComparison c = compare_curves(a, b, 0, INT64_MAX);
  EXPECT_EQ(c.iterations.size(), 200u);
  EXPECT_EQ(c.one_nonfinite, 100);
  EXPECT_EQ(c.max_rel, INFINITY);
  EXPECT_EQ(c.max_rel_iter, 101);
  EXPECT_EQ(c.avg_loss_rel, INFINITY);
  EXPECT_FALSE(c.within(0.02));
  EXPECT_TRUE(compare_curves(a, b, 1, 100).within(0.02));
  auto a2 = a;
  a2[7] = NAN, b[7] = INFINITY;
  const CurveComparison d = compare_curves(a2, b, 1, 100);
  EXPECT_EQ(d.both_nonfinite, 1);
  EXPECT_EQ(d.iterations.size(), 99u);
  EXPECT_TRUE(d.within(0.02));
  EXPECT_NE(compare_error({{1, NAN}}, {{1, NAN}}).find("NaN or inf in both runs"), std::string::npos);
}

// Megatron's line for an interval with nothing to average has no "lm loss"; its counts tell an
// fp16 interval where every step was skipped from a diverged one.
std::string no_loss_line(int64_t it, int skipped, int nan) {
  return fmt::format(" iteration {:8d}/     100 | consumed samples: 8 | loss scale: 65536.0 | number of skipped "
                     "iterations: {:3d} | number of nan iterations: {:3d} | samples/s/p: 1.0 |\n", it, skipped, nan);
}

TEST(LossCurve, IntervalsWithEveryStepSkippedAreReadAndNotCompared) {
  const std::string log = write("skipped.log", no_loss_line(1, 1, 0) + no_loss_line(2, 1, 0) + log_line(3, "2.0") +
                                                   no_loss_line(4, 1, 1) + no_loss_line(5, 0, 0) + log_line(6, "1.5"));
  const LossCurve a = read_loss_curve(log);
  EXPECT_EQ(a.skipped, (std::set<int64_t>{1, 2}));
  ASSERT_EQ(a.loss.size(), 4u);
  EXPECT_TRUE(std::isnan(a.loss.at(4)));  // skipped, but its loss was NaN: diverged
  EXPECT_TRUE(std::isnan(a.loss.at(5)));  // Megatron leaves out a NaN average (bf16) too
  // A cut line without its nan count is neither: the half-written last line is ignored.
  const std::string cut = write("skipped_cut.log", log_line(1, "2.0") + " iteration 2/ 9 | number of skipped iterations:   1 |");
  EXPECT_EQ(read_loss_curve(cut).loss.size(), 1u);
  EXPECT_TRUE(read_loss_curve(cut).skipped.empty());
  // Our metrics.jsonl leaves out lm_loss the same way; validation records stay ignored.
  const std::string js = write("skipped.jsonl",
      "{\"iteration\": 1, \"loss_scale\": 65536, \"skipped_iterations\": 1, \"nan_iterations\": 0}\n"
      "{\"iteration\": 1, \"valid_lm_loss\": 3}\n"
      "{\"iteration\": 2, \"skipped_iterations\": 1, \"nan_iterations\": 1}\n"
      "{\"iteration\": 3, \"lm_loss\": 2.0, \"skipped_iterations\": 0, \"nan_iterations\": 0}\n");
  const LossCurve b = read_loss_curve(js);
  EXPECT_EQ(b.skipped, (std::set<int64_t>{1}));
  ASSERT_EQ(b.loss.size(), 2u);
  EXPECT_TRUE(std::isnan(b.loss.at(2)));
  EXPECT_EQ(b.loss.at(3), 2.0);

  // Compared: iterations where either run skipped everything are counted, not compared.
  LossCurve r, f;  // r: fp32 reference; f: fp16, scale overflowing at first
  for (int64_t i = 1; i <= 10; ++i) r.loss[i] = f.loss[i] = 1.0 + 1.0 / double(i);
  for (const int64_t i : {1, 2, 3}) f.loss.erase(i), f.skipped.insert(i);
  const CurveComparison c = compare_curves(r, f, 0, INT64_MAX);
  EXPECT_EQ(c.skipped_intervals, 3);
  EXPECT_EQ(c.iterations, (std::vector<int64_t>{4, 5, 6, 7, 8, 9, 10}));
  EXPECT_EQ(c.mean_rel, 0.0);
  EXPECT_TRUE(c.within(1e-12));
  // An iteration a run did not log at all is still a mismatch, skipped interval or not.
  LossCurve g = f;
  g.skipped.erase(2);
  try {
    compare_curves(r, g, 0, INT64_MAX);
    ADD_FAILURE() << "a missing iteration passed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("9 in common"), std::string::npos) << e.what();
  }
  try {
    compare_curves(r, f, 1, 3);
    ADD_FAILURE() << "a range of skipped intervals only passed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("(0 with the loss NaN or inf in both runs, 3 where a run skipped every step"), std::string::npos) << e.what();
  }
  // A run of skipped intervals only has no loss at all.
  const std::string only = write("only_skipped.log", no_loss_line(1, 1, 0) + no_loss_line(2, 1, 0));
  EXPECT_NE(read_error(only).find("each of its 2 training records is an interval where every iteration was skipped"),
            std::string::npos) << read_error(only);
}

TEST(LossCurve, ZeroReferenceLossGivesAFiniteRelativeError) {
  const CurveComparison c = compare_curves({{1, 0.0}, {2, 2.0}}, {{1, 0.0}, {2, 2.0}}, 0, 10);
  EXPECT_EQ(c.rel, (std::vector<double>{0, 0}));
  const CurveComparison d = compare_curves({{1, 0.0}, {2, 2.0}}, {{1, 1e-3}, {2, 2.0}}, 0, 10);
  EXPECT_DOUBLE_EQ(d.rel[0], 1e-3 / kRelativeErrorFloor);
  EXPECT_TRUE(std::isfinite(d.mean_rel));
  EXPECT_EQ(d.max_rel_iter, 1);
  // Losses summing to 0 in A: the relative error of the average loss is not 0 when B differs.
  const CurveComparison e = compare_curves({{1, 1.0}, {2, -1.0}}, {{1, 1.0}, {2, 1.0}}, 0, 10);
  EXPECT_DOUBLE_EQ(e.avg_loss_rel, 2.0 / kRelativeErrorFloor);
  EXPECT_FALSE(e.within(0.02));
}

// Every '&' in `s` starts an entity.
bool ampersands_are_entities(const std::string& s) {
  for (size_t p = s.find('&'); p != std::string::npos; p = s.find('&', p + 1)) {
    bool ok = false;
    for (const char* e : {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"}) ok |= s.compare(p, std::strlen(e), e) == 0;
    if (!ok) return false;
  }
  return true;
}

TEST(LossCurve, SvgEscapesNamesAndHasNoNonFiniteCoordinates) {
  auto a = steady(1, 20), b = a;
  a[1] = 0.0, b[1] = 0.5;    // r = 0.5 / floor: huge but finite
  b[5] = NAN, b[6] = INFINITY;  // r = inf
  a[9] = NAN, b[9] = NAN;    // skipped
  const CurveComparison c = compare_curves(a, b, 0, 100);
  const std::string svg = comparison_svg(c, "runs/r&d <1>.jsonl", "b\"'.log", 0.02);
  EXPECT_TRUE(ampersands_are_entities(svg)) << svg;
  EXPECT_NE(svg.find("A: runs/r&amp;d &lt;1&gt;.jsonl"), std::string::npos);
  EXPECT_NE(svg.find("B: b&quot;&apos;.log"), std::string::npos);
  int lines = 0;
  for (size_t p = svg.find("points=\""); p != std::string::npos; p = svg.find("points=\"", p + 1), ++lines) {
    const std::string pts = svg.substr(p + 8, svg.find('"', p + 8) - p - 8);
    EXPECT_EQ(pts.find_first_not_of("0123456789., "), std::string::npos) << pts;
  }
  EXPECT_EQ(lines, 4);
  // Loss B breaks at its NaN (two polylines), the error line stays whole (inf on the top edge).
  size_t red = 0;
  for (size_t p = svg.find("stroke=\"#d62728\""); p != std::string::npos; p = svg.find("stroke=\"#d62728\"", p + 1)) ++red;
  EXPECT_EQ(red, 2u);
  if (std::system("command -v xmllint > /dev/null 2>&1") == 0) {
    const std::string p = write("plot.svg", svg);
    EXPECT_EQ(std::system(("xmllint --noout " + p).c_str()), 0);
  }
}

}  // namespace
}  // namespace cs
