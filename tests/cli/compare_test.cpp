// chuanspeed compare: hand-computed figures on small synthetic runs, a Megatron log against our
// metrics.jsonl, the verdict's exit status, and clear errors for empty, malformed or
// non-overlapping inputs.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
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
  const auto a = read_loss_curve(write("a", kMegatronLog));
  ASSERT_EQ(a.size(), 4u);
  const auto b = read_loss_curve(write("b",
      "{\"iteration\": 1, \"lm_loss\": 10.1}\n{\"iteration\": 2, \"lm_loss\": 8.0}\n"
      "{\"iteration\": 3, \"lm_loss\": 4.0}\n{\"iteration\": 5, \"lm_loss\": 3.0}\n"));
  const CurveComparison c = compare_curves(a, b, 0, 100);
  ASSERT_EQ(c.iterations, (std::vector<int64_t>{1, 2, 3}));
  // rel = |a - b| / |a|: 0.01, 0, 0.2
  EXPECT_NEAR(c.mean_rel, (0.01 + 0 + 0.2) / 3, 1e-12);
  EXPECT_NEAR(c.max_rel, 0.2, 1e-12);
  EXPECT_EQ(c.max_rel_iter, 3);
  EXPECT_NEAR(c.max_abs, 1.0, 1e-12);
  EXPECT_NEAR(c.avg_loss_rel, std::fabs(23.0 - 22.1) / 23.0, 1e-12);
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
  r = test::run_binary("compare " + a + " " + b);
  EXPECT_EQ(r.status, 3) << r.out;
  EXPECT_NE(r.out.find("BEYOND tolerance"), std::string::npos);
}

TEST(Compare, EmptyMalformedAndDisjointInputsAreClearErrors) {
  const std::string a = write("ea", kMegatronLog);
  auto r = test::run_binary("compare " + a + " " + write("empty", ""));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("no losses found"), std::string::npos) << r.err;
  r = test::run_binary("compare " + a + " " + write("bad", "{\"iteration\": 1, \"lm_loss\": 3}\n{oops\n"));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find(":2: not a metrics record"), std::string::npos) << r.err;
  r = test::run_binary("compare " + a + " " + write("far", "{\"iteration\": 100, \"lm_loss\": 3}\n"));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("share no iteration"), std::string::npos) << r.err;
  r = test::run_binary("compare " + a + " /nonexistent/metrics.jsonl");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("/nonexistent/metrics.jsonl"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace cs
