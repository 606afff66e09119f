// AscendSpeed's Baichuan launches, ported, run as written when scaled down to 2 ranks: the 7B
// ZeRO-2 launch (pretrain_baichuan_zero_tiny.sh: the same script and ds_config.json with smaller
// sizes) and the README's 13B script (pretrain_baichuan_readme_13B_tiny.sh: TP2 with sequence
// parallelism); every flag of the seeds is accepted, the runs train to the end and save their
// checkpoints.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "cli/run_util.h"

namespace cs {
namespace {
namespace fs = std::filesystem;

TEST(Examples, ZeroSevenBScriptScaledDownTrainsOnTwoRanks) {
  if (std::system("mpirun --version > /dev/null 2>&1") != 0) GTEST_SKIP() << "mpirun not installed";
  const std::string dir = ::testing::TempDir() + "/cs_zero_tiny_" + std::to_string(getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  ASSERT_EQ(0, test::run_binary("synth-data --output-prefix " + dir + "/synth --vocab-size 1024 --num-docs 64 --seed 7")
                   .status);
  const std::string cmd = "cd " + std::string(CS_SOURCE_DIR) +
                          " && env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 "
                          "CHUANSPEED=" + CS_BINARY + " DATA_PATH=" + dir + "/synth SAVE=" + dir +
                          "/run bash examples/baichuan/pretrain_baichuan_zero_tiny.sh > " + dir + "/out.log 2> " +
                          dir + "/err.log";
  const int st = std::system(cmd.c_str());
  std::ifstream err(dir + "/err.log");
  const std::string errs((std::istreambuf_iterator<char>(err)), std::istreambuf_iterator<char>());
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << errs;
  std::ifstream log(dir + "/run/train.log");
  const std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_EQ(test::count_matching_lines(text, " iteration       60/      60 |"), 1) << text;
  EXPECT_TRUE(fs::exists(dir + "/run/iter_0000060/optim-tp00-pp000-dp000.safetensors"));
  // ZeRO stage 2 from the ds_config, and its tuning keys named once as having no effect.
  EXPECT_NE(errs.find("keys with no effect here"), std::string::npos) << errs;
  EXPECT_EQ(errs.find("error"), std::string::npos) << errs;
  fs::remove_all(dir);
}

TEST(Examples, ReadmeThirteenBScriptScaledDownTrainsTensorParallelOnTwoRanks) {
  if (std::system("mpirun --version > /dev/null 2>&1") != 0) GTEST_SKIP() << "mpirun not installed";
  const std::string dir = ::testing::TempDir() + "/cs_readme13_tiny_" + std::to_string(getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  ASSERT_EQ(0, test::run_binary("synth-data --output-prefix " + dir + "/synth --vocab-size 1024 --num-docs 64 --seed 7")
                   .status);
  const std::string cmd = "cd " + std::string(CS_SOURCE_DIR) +
                          " && env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 "
                          "CHUANSPEED=" + CS_BINARY + " DATA_PATH=" + dir + "/synth SAVE=" + dir +
                          "/run bash examples/baichuan/pretrain_baichuan_readme_13B_tiny.sh > " + dir + "/out.log 2> " +
                          dir + "/err.log";
  const int st = std::system(cmd.c_str());
  std::ifstream err(dir + "/err.log");
  const std::string errs((std::istreambuf_iterator<char>(err)), std::istreambuf_iterator<char>());
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << errs;
  std::ifstream out(dir + "/out.log");
  const std::string text((std::istreambuf_iterator<char>(out)), std::istreambuf_iterator<char>());
  EXPECT_EQ(test::count_matching_lines(text, " iteration       40/      40 |"), 1) << text;
  EXPECT_NE(errs.find("tensor-parallel over 2 with sequence parallelism"), std::string::npos) << errs;
  EXPECT_TRUE(fs::exists(dir + "/run/iter_0000040/model-tp01-pp000.safetensors"));
  EXPECT_EQ(errs.find("error"), std::string::npos) << errs;
  fs::remove_all(dir);
}

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  return {(std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>()};
}

// The tiny scripts' default dataset is the one `make demo` writes (scripts/demo.sh preprocesses the
// demo parquet into $OUT/data/alpaca with OUT=out/demo, and preprocess adds _text_document).
TEST(Examples, TinyScriptsDefaultToTheDatasetMakeDemoWrites) {
  const std::string root = CS_SOURCE_DIR, demo = read_text(root + "/scripts/demo.sh");
  ASSERT_NE(demo.find("OUT=out/demo\n"), std::string::npos);
  ASSERT_NE(demo.find("--output-prefix \"$OUT/data/alpaca\""), std::string::npos);
  for (const char* script :
       {"pretrain_baichuan_tiny.sh", "pretrain_baichuan_zero_tiny.sh", "pretrain_baichuan_readme_13B_tiny.sh"})
    EXPECT_NE(read_text(root + "/examples/baichuan/" + script).find("DATA_PATH=${DATA_PATH:-out/demo/data/alpaca_text_document}"),
              std::string::npos) << script;
}

}  // namespace
}  // namespace cs
