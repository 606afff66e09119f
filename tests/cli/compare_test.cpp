// chuanspeed compare: hand-computed figures on small synthetic runs, a Megatron log against our
// metrics.jsonl, the verdict's exit status, clear errors for empty, malformed or non-overlapping
// inputs, NaN losses, intervals where every step was skipped, long lines, truncated / diverged /
// resumed runs and the plot's escaping.
#include <fmt/core.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "cli/run_util.h"
#include "train/loss_curve.h"

namespace cs {
namespace {

std::string write(const std::string& tag, const std::string& text) {
  const std::string p = ::testing::TempDir() + "/cs_compare_" + tag + "_" + std::to_string(getpid());
  std::ofstream(p) << text;
  return p;
}

const char* kMegatronLog =
    "building GPT model ...\n"
    " iteration        1/       4 | consumed samples:            8 | elapsed time per iteration (ms): 9.1 | "
    "learning rate: 1.000E-05 | global batch size:     8 | lm loss: 1.000000E+01 | loss scale: 1.0 | "
    "grad norm: 1.000 | number of skipped iterations:   0 | number of nan iterations:   0 |\n"
    "[Rank 0] (after 1 iterations) memory (MB) | allocated: 1.0\n"
    " iteration        2/       4 | consumed samples:           16 | lm loss: 8.000000E+00 | loss scale: 1.0 |\n"
    " iteration        3/       4 | consumed samples:           24 | lm loss: 5.000000E+00 | loss scale: 1.0 |\n"
    " iteration        4/       4 | consumed samples:           32 | lm loss: 4.000000E+00 | loss scale: 1.0 |\n";

TEST(Compare, FiguresMatchHandComputation) {
  const auto a = read_loss_curve(write("a", kMegatronLog)).loss;
  ASSERT_EQ(a.size(), 4u);
  const auto b = read_loss_curve(write("b",
      "{\"iteration\": 1, \"lm_loss\": 10.1}\n{\"iteration\": 2, \"lm_loss\": 8.0}\n"
      "{\"iteration\": 3, \"lm_loss\": 4.0}\n{\"iteration\": 4, \"lm_loss\": 3.0}\n")).loss;
  const CurveComparison c = compare_curves(a, b, 0, 100);
  ASSERT_EQ(c.iterations, (std::vector<int64_t>{1, 2, 3, 4}));
  // rel = |a - b| / |a|: 0.01, 0, 0.2, 0.25
  EXPECT_NEAR(c.mean_rel, (0.01 + 0 + 0.2 + 0.25) / 4, 1e-12);
  EXPECT_NEAR(c.max_rel, 0.25, 1e-12);
  EXPECT_EQ(c.max_rel_iter, 4);
  EXPECT_NEAR(c.max_abs, 1.0, 1e-12);
  EXPECT_EQ(c.max_abs_iter, 3);  // the first of the equal maxima
  EXPECT_NEAR(c.avg_loss_rel, std::fabs(27.0 - 25.1) / 27.0, 1e-12);
  const CurveComparison d = compare_curves(a, b, 2, 2);
  EXPECT_EQ(d.iterations, (std::vector<int64_t>{2}));
  EXPECT_TRUE(d.within(0.02));
  EXPECT_FALSE(c.within(0.02));
}

TEST(Compare, ExitStatusFollowsTheVerdictAndThePlotIsWritten) {
  const std::string a = write("la", kMegatronLog), svg = ::testing::TempDir() + "/cs_compare_plot.svg";
  auto r = test::run_binary("compare " + a + " " + a + " --plot " + svg);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("mean relative error:                 0.000000"), std::string::npos) << r.out;
  std::ifstream f(svg);
  const std::string text((std::istreambuf_iterator<char>(f)), {});
  EXPECT_NE(text.find("<svg"), std::string::npos);
  EXPECT_NE(text.find("polyline"), std::string::npos);
  const std::string b = write("lb", "{\"iteration\": 1, \"lm_loss\": 12}\n{\"iteration\": 2, \"lm_loss\": 8}\n");
  r = test::run_binary("compare " + a + " " + b + " --to-iter 2");
  EXPECT_EQ(r.status, 3) << r.out << r.err;
  EXPECT_NE(r.out.find("BEYOND tolerance"), std::string::npos);
  r = test::run_binary("compare " + a + " " + a + " --from-iter 3 --to-iter 2");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--from-iter 3 is after --to-iter 2"), std::string::npos) << r.err;
}

TEST(Compare, EmptyMalformedAndDisjointInputsAreClearErrors) {
  const std::string a = write("ea", kMegatronLog);
  auto r = test::run_binary("compare " + a + " " + write("empty", ""));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("no losses found"), std::string::npos) << r.err;
  r = test::run_binary("compare " + a + " " + write("bad", "{\"iteration\": 1, \"lm_loss\": 3}\n{oops\n"));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find(":2: expected a JSON metrics record"), std::string::npos) << r.err;
  r = test::run_binary("compare " + a + " " + write("far", "{\"iteration\": 100, \"lm_loss\": 3}\n"));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("share no iteration"), std::string::npos) << r.err;
  r = test::run_binary("compare " + a + " /nonexistent/metrics.jsonl");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("/nonexistent/metrics.jsonl"), std::string::npos) << r.err;
}

// A Megatron-format log of iterations [first, last] with losses 1 + 1/i, or `nan_from` on as NAN.
std::string steady_log(int64_t first, int64_t last, int64_t nan_from = INT64_MAX) {
  std::string s;
  for (int64_t i = first; i <= last; ++i)
    s += fmt::format(" iteration {:8d}/     200 | consumed samples: {:12d} | lm loss: {} | loss scale: 1.0 |\n", i, 8 * i,
                     i >= nan_from ? std::string("NAN") : fmt::format("{:.6E}", 1.0 + 1.0 / double(i)));
  return s;
}

TEST(Compare, NanLossesFromOurLogCountAsNonFinite) {
  const std::string a = write("na", kMegatronLog);
  std::string nan_log = kMegatronLog;
  nan_log.replace(nan_log.find("5.000000E+00"), 12, "NAN");  // how our trainer and Megatron print NaN
  const std::string b = write("nb", nan_log);
  auto r = test::run_binary("compare " + a + " " + b);
  EXPECT_EQ(r.status, 3) << r.err;
  EXPECT_NE(r.out.find("max relative error:                  inf (iteration 3)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("note: 1 iteration(s) where only one run's loss is NaN or inf"), std::string::npos) << r.out;
  r = test::run_binary("compare " + b + " " + b);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("compared 3 iterations (1..4), skipped 1\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("note: skipped 1 iteration(s) where the loss is NaN or inf in both runs"), std::string::npos) << r.out;
}

// An fp16 run whose first interval skipped every step (Megatron logs no "lm loss" there)
// compares against an fp32 run over the other iterations.
TEST(Compare, IntervalsWhereEveryStepWasSkippedAreNotCompared) {
  const std::string a = write("sa", kMegatronLog);
  std::string fp16 = kMegatronLog;
  const size_t l = fp16.find(" lm loss: 1.000000E+01 |"), g = fp16.find("grad norm: 1.000 | ");
  fp16.replace(g, 19, "");  // the skipped iteration has no grad norm either
  fp16.replace(l, 24, "");
  fp16.replace(fp16.find("skipped iterations:   0"), 23, "skipped iterations:   1");
  const std::string b = write("sb", fp16);
  auto r = test::run_binary("compare " + a + " " + b);
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("4 iterations (1..4), 1 of them without a loss (every step skipped)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("compared 3 iterations (2..4), skipped 1\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("note: skipped 1 iteration(s) where a run logged no loss"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("mean relative error:                 0.000000"), std::string::npos) << r.out;
}

TEST(Compare, UnreadableValueIsOneErrorLineNamingFileAndLine) {
  const std::string a = write("ua", kMegatronLog);
  std::string na = kMegatronLog;
  na.replace(na.find("8.000000E+00"), 12, "N/A");
  const std::string b = write("ub", na);
  auto r = test::run_binary("compare " + a + " " + b);
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err, "chuanspeed compare: error: [compare] " + b + ":4: expected a number, nan or inf after 'lm loss:', "
                   "got 'N/A'; Hint: fix or delete this line of the log\n");
  r = test::run_binary("compare " + a + " " + write("ui.jsonl", "{\"iteration\": \"1\", \"lm_loss\": 2}\n"));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find(":1: expected \"iteration\" to be a whole number"), std::string::npos) << r.err;
  EXPECT_EQ(test::count_matching_lines(r.err, ""), 1) << r.err;
}

TEST(Compare, FiftyThousandCharacterLineDoesNotCrash) {
  const std::string pad(50000, 'x');
  const std::string a = write("long", " iteration 1/ 2 | " + pad + " | lm loss: 2.0 |\n iteration 2/ 2 | lm loss: 1.5 |\n");
  const auto r = test::run_binary("compare " + a + " " + a);
  EXPECT_EQ(r.status, 0) << r.err;  // was SIGSEGV (-1): std::regex recursion
}

TEST(Compare, TruncatedOrDivergedRunDoesNotPass) {
  const std::string a = write("ta", steady_log(1, 200));
  const std::string short_b = write("tb", steady_log(1, 5));
  auto r = test::run_binary("compare " + a + " " + short_b);
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.err.find("the two runs log different iterations: A has 200 iteration(s), 1..200, B has 5 iteration(s), 1..5, "
                       "5 in common; expected the same iterations; Hint: to compare only the common range, pass "
                       "--from-iter 1 --to-iter 5"), std::string::npos) << r.err;
  r = test::run_binary("compare " + a + " " + short_b + " --from-iter 1 --to-iter 5");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("A: " + a + ": 200 iterations (1..200)\nB: " + short_b + ": 5 iterations (1..5)\n"
                       "compared 5 iterations (1..5), skipped 0\n"), std::string::npos) << r.out;
  const std::string diverged = write("td", steady_log(1, 200, 101));
  r = test::run_binary("compare " + a + " " + diverged);
  EXPECT_EQ(r.status, 3) << r.err;
  EXPECT_NE(r.out.find("note: 100 iteration(s) where only one run's loss is NaN or inf"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("max relative error:                  inf (iteration 101)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("verdict: BEYOND tolerance"), std::string::npos) << r.out;
}

TEST(Compare, ResumedRunSaysWhichIterationsWereLoggedTwice) {
  const std::string a = write("ra", steady_log(1, 10));
  const std::string b = write("rb", steady_log(1, 6) + "resuming from iteration 4\n" + steady_log(5, 10));
  const auto r = test::run_binary("compare " + a + " " + b);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("note: " + b + ": 2 iteration(s) logged more than once (first 5, last 6; a resumed run?): "
                       "the last value of each is used"), std::string::npos) << r.out;
}

TEST(Compare, PlotEscapesRunNamesAndReportsAFailingRsvgConvert) {
  const std::string dir = ::testing::TempDir() + "/cs_compare_xml_" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  const std::string a = dir + "/r&d <1>.log", svg = dir + "/plot.svg";
  std::ofstream(a) << steady_log(1, 20);
  auto r = test::run_binary("compare '" + a + "' '" + a + "' --plot " + svg);
  ASSERT_EQ(r.status, 0) << r.err;
  std::ifstream f(svg);
  const std::string text((std::istreambuf_iterator<char>(f)), {});
  EXPECT_NE(text.find("A: " + dir + "/r&amp;d &lt;1&gt;.log"), std::string::npos) << text;
  for (size_t p = text.find('&'); p != std::string::npos; p = text.find('&', p + 1))
    EXPECT_TRUE(text.compare(p, 5, "&amp;") == 0 || text.compare(p, 4, "&lt;") == 0 || text.compare(p, 4, "&gt;") == 0)
        << text.substr(p, 20);
  if (std::system("command -v rsvg-convert > /dev/null 2>&1") == 0) {
    EXPECT_TRUE(std::filesystem::exists(dir + "/plot.png")) << r.out << r.err;  // the SVG now parses
    EXPECT_NE(r.out.find("plot: " + dir + "/plot.png"), std::string::npos) << r.out;
  }
  // An rsvg-convert that runs and fails is reported in one warning line; the verdict stands.
  const std::string bin = dir + "/bin";
  std::filesystem::create_directories(bin);
  std::ofstream(bin + "/rsvg-convert") << "#!/bin/sh\necho 'Error reading SVG: broken' >&2\nexit 1\n";
  std::filesystem::permissions(bin + "/rsvg-convert", std::filesystem::perms::owner_all);
  const std::string old_path = std::getenv("PATH") ? std::getenv("PATH") : "";
  setenv("PATH", (bin + ":" + old_path).c_str(), 1);
  r = test::run_binary("compare '" + a + "' '" + a + "' --plot " + svg);
  setenv("PATH", old_path.c_str(), 1);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, "warning: [compare] rsvg-convert could not make " + dir + "/plot.png from " + svg +
                   " (exit status 1: Error reading SVG: broken); the SVG is written\n");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace cs
