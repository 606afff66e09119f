// One exit-status rule for every command (README "Exit status"): 2 for usage errors (a flag or a
// flag's value), 1 for data and runtime errors (a file that is missing or wrong), 70 for an
// internal error (a failed CS_CHECK: a bug), each one line.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "cli/commands.h"
#include "cli/run_util.h"
#include "core/error.h"

namespace cs {
namespace {

struct Case {
  std::string command, usage, missing_file;
};

TEST(ExitStatus, UsageIsTwoAndAMissingFileIsOneForEveryCommand) {
  const std::string tok = std::string(CS_SOURCE_DIR) + "/assets/demo/tokenizer";
  const Case cases[] = {
      {"preprocess", "preprocess --workers x", "preprocess --input /nope.jsonl --output-prefix /tmp/cs_exit_x "
                                               "--tokenizer-name-or-path " + tok},
      {"train", "train --train-iters 1 --lr 1e-3 --data-path x --micro-batch-size zero",
       "train --model tiny --vocab-size 101 --train-iters 1 --lr 1e-3 --eval-iters 0 --data-path /nope"},
      {"eval", "eval --load x --data-path x --seq-length -3", "eval --load /nope --data-path /nope --seq-length 8"},
      {"generate", "generate --load x --prompt-ids 1 --top-p 7", "generate --load /nope --prompt-ids 1,2"},
      {"convert", "convert --input x --output y --dtype f8", "convert --input /nope --output /tmp/cs_exit_out"},
      {"compare", "compare a b --tolerance nan", "compare /nope/a.jsonl /nope/b.jsonl"},
      {"pulse", "pulse --run-dir x --bogus", "pulse --run-dir /nope"},
  };
  for (const Case& c : cases) {
    const auto u = test::run_binary(c.usage), m = test::run_binary(c.missing_file);
    EXPECT_EQ(u.status, 2) << c.usage << "\n" << u.err;
    EXPECT_EQ(test::count_matching_lines(u.err, "error"), 1) << u.err;
    EXPECT_EQ(m.status, 1) << c.missing_file << "\n" << m.err;
    EXPECT_EQ(test::count_matching_lines(m.err, "error:"), 1) << m.err;
    EXPECT_NE(m.err.find("/nope"), std::string::npos) << m.err;
  }
}

// --version answers at the top and in every command; --help shows defaults and required flags.
TEST(ExitStatus, VersionAndHelpShowWhatAUserNeeds) {
  for (const char* args : {"--version", "train --version", "eval --version"}) {
    const auto r = test::run_binary(args);
    EXPECT_EQ(r.status, 0) << args << "\n" << r.err;
    EXPECT_EQ(r.out.rfind("chuanspeed ", 0), 0u) << r.out;
  }
  const auto h = test::run_binary("train --help");
  EXPECT_EQ(h.status, 0);
  EXPECT_NE(h.out.find("--micro-batch-size INT:POSITIVE=1"), std::string::npos) << h.out;
  EXPECT_NE(h.out.find("peak learning rate (required, except with --skip-train)"), std::string::npos) << h.out;
  const auto e = test::run_binary("eval --help");
  EXPECT_NE(e.out.find("--load TEXT REQUIRED"), std::string::npos) << e.out;
  EXPECT_NE(h.out.find("Excludes: --train-samples"), std::string::npos) << h.out;
}

// What main does with each kind of failure (every command runs inside run_reporting_errors).
TEST(ExitStatus, AFailedCheckIsOneInternalErrorLineAndSeventy) {
  const bool no_mpi = false;
  auto status_and_line = [&](const std::function<int()>& body) {
    testing::internal::CaptureStderr();
    const int rc = cli::run_reporting_errors("eval", no_mpi, body);
    return std::make_pair(rc, testing::internal::GetCapturedStderr());
  };
  const auto bug = status_and_line([]() -> int {
    CS_CHECK(2 + 2 == 5) << "context";
    return 0;
  });
  EXPECT_EQ(bug.first, cli::kInternalErrorExit);
  EXPECT_EQ(test::count_matching_lines(bug.second, ""), 1) << bug.second;
  EXPECT_THAT(bug.second, testing::StartsWith("chuanspeed eval: internal error: "));
  EXPECT_THAT(bug.second, testing::HasSubstr("check failed: 2 + 2 == 5 context. Hint: this is a bug in chuanspeed"));
  const auto usage = status_and_line([]() -> int { throw UsageError("--x 3: expected 4"); });
  EXPECT_EQ(usage.first, 2);
  EXPECT_EQ(usage.second, "chuanspeed eval: error: --x 3: expected 4\n");
  const auto data = status_and_line([]() -> int { throw Error("[dataset] f.idx: truncated"); });
  EXPECT_EQ(data.first, 1);
  EXPECT_EQ(data.second, "chuanspeed eval: error: [dataset] f.idx: truncated\n");
  EXPECT_EQ(status_and_line([] { return 3; }).first, 3);
}

}  // namespace
}  // namespace cs
