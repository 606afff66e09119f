// CS_CHECK (a bug) throws cs::InternalError, not an abort: inside a test the one test fails and
// the binary goes on to the next (checked by running this binary's own disabled cases in a child
// process); the error names file:line, the expression and the streamed context; and it is never a
// cs::Error, so no handler of bad input can take a bug for bad input.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <type_traits>

#include "core/error.h"

namespace cs {
namespace {

using testing::HasSubstr;

static_assert(!std::is_base_of_v<Error, InternalError>, "a bug must not be caught as bad input");

int check_positive(int x) {
  CS_CHECK(x > 0) << "x = " << x;
  return x;
}

TEST(Check, FailureThrowsInternalErrorWithFileLineExpressionAndContext) {
  EXPECT_EQ(check_positive(3), 3);
  try {
    check_positive(-5);
    FAIL() << "no exception";
  } catch (const InternalError& e) {
    EXPECT_THAT(e.what(), HasSubstr("error_test.cpp:"));
    EXPECT_THAT(e.what(), HasSubstr(": check failed: x > 0 x = -5"));
  }
}

TEST(Check, DcheckIsTheSameInBuildsThatHaveIt) {
#if defined(NDEBUG) && !defined(CS_DCHECKS)
  GTEST_SKIP() << "CS_DCHECK is compiled out of release builds";
#else
  EXPECT_THROW(CS_DCHECK(1 + 1 == 3) << "arithmetic", InternalError);
#endif
}

// Run only as a child of the next test: a check failing inside a test body, and a test after it.
TEST(CheckInATest, DISABLED_FailsAlone) { check_positive(0); }
TEST(CheckInATest, DISABLED_RunsAfter) { SUCCEED(); }

TEST(CheckInATest, OneTestFailsAndTheBinaryGoesOn) {
  const std::string cmd = "/proc/" + std::to_string(::getpid()) + "/exe --gtest_also_run_disabled_tests " +
                          "--gtest_filter='CheckInATest.DISABLED_*' 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  std::array<char, 4096> buf;
  for (size_t n; (n = std::fread(buf.data(), 1, buf.size(), p)) > 0;) out.append(buf.data(), n);
  const int st = ::pclose(p);
  ASSERT_TRUE(WIFEXITED(st)) << "the test binary died of a signal:\n" << out;
  EXPECT_EQ(WEXITSTATUS(st), 1) << out;  // gtest's status for a failed test
  EXPECT_THAT(out, HasSubstr("check failed: x > 0 x = 0"));
  EXPECT_THAT(out, HasSubstr("[  FAILED  ] CheckInATest.DISABLED_FailsAlone"));
  EXPECT_THAT(out, HasSubstr("[       OK ] CheckInATest.DISABLED_RunsAfter"));
}

}  // namespace
}  // namespace cs
