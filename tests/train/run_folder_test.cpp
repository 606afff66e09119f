// One run, one folder: a run holds its --save folder's lock (a second run is one line naming the
// holder, and touches nothing); a fresh start into a folder holding another run is refused with
// the ways out (nothing touched); --start-over moves the old run aside first; --load SAVE resumes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fmt/core.h>

#include <filesystem>
#include <fstream>

#include "cli/run_util.h"
#include "train/heartbeat.h"
#include "train/run_folder.h"

namespace cs {
namespace {
namespace fs = std::filesystem;

class RunFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/cs_runfolder_" + std::to_string(getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    ASSERT_EQ(0, test::run_binary("synth-data --output-prefix " + dir_ + "/data --vocab-size 101 --num-docs 20").status);
    flags_ = "train --model tiny --vocab-size 101 --make-vocab-size-divisible-by 1 --seq-length 8 --lr 1e-3 "
             "--log-interval 1 --eval-iters 0 --train-iters 2 --lr-decay-iters 4 --data-path " + dir_ + "/data --save " +
             dir_ + "/run";
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string read(const std::string& path) {
    std::ifstream f(path);
    return {(std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>()};
  }
  std::string dir_, flags_;
};

TEST_F(RunFolder, ASecondRunWhileTheFolderIsLockedIsOneLineAndTouchesNothing) {
  RunLock held(dir_ + "/run");  // this test process is the running trainer
  const auto r = test::run_binary(flags_);
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_EQ(test::count_matching_lines(r.err, "error:"), 1) << r.err;
  EXPECT_NE(r.err.find(fmt::format("in use by another training run (pid {} on {})", getpid(), host_name())),
            std::string::npos) << r.err;
  EXPECT_FALSE(holds_a_run(dir_ + "/run"));
}

TEST_F(RunFolder, FreshStartIntoAnotherRunIsRefusedAndStartOverMovesItAside) {
  ASSERT_EQ(0, test::run_binary(flags_).status);
  const std::string metrics = read(dir_ + "/run/metrics.jsonl");
  const auto r = test::run_binary(flags_ + " --seed 7");
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("holds another run"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--load " + dir_ + "/run resumes that run"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--start-over"), std::string::npos) << r.err;
  EXPECT_EQ(read(dir_ + "/run/metrics.jsonl"), metrics);  // untouched
  // Resuming the folder is no fresh start.
  EXPECT_EQ(0, test::run_binary(flags_ + " --train-iters 3 --load " + dir_ + "/run").status);
  // --start-over: the old run's files move into previous-<time>/, the new run starts clean.
  const auto s = test::run_binary(flags_ + " --seed 7 --start-over");
  ASSERT_EQ(s.status, 0) << s.err;
  int previous = 0;
  for (const auto& e : fs::directory_iterator(dir_ + "/run"))
    if (e.path().filename().string().rfind("previous-", 0) == 0) {
      ++previous;
      EXPECT_TRUE(fs::exists(e.path() / "iter_0000003"));
      EXPECT_TRUE(fs::exists(e.path() / "metrics.jsonl"));
    }
  EXPECT_EQ(previous, 1);
  EXPECT_FALSE(fs::exists(dir_ + "/run/iter_0000003"));
  EXPECT_TRUE(fs::exists(dir_ + "/run/iter_0000002"));
}

}  // namespace
}  // namespace cs
