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

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  return {(std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>()};
}

// A tiny example script run as a user runs it (from the source folder, on a synthetic dataset of
// the demo tokenizer's 1024 ids), into dir/run; its stdout in dir/out.log.
struct ExampleRun {
  std::string dir, out, err;
  int status = -1;
};

ExampleRun run_example(const std::string& script, const std::string& tag) {
  ExampleRun r;
  r.dir = ::testing::TempDir() + "/cs_" + tag + "_" + std::to_string(getpid());
  fs::remove_all(r.dir);
  fs::create_directories(r.dir);
  if (test::run_binary("synth-data --output-prefix " + r.dir + "/synth --vocab-size 1024 --num-docs 64 --seed 7")
          .status != 0)
    return r;
  const std::string cmd = "cd " + std::string(CS_SOURCE_DIR) +
                          " && env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 "
                          "CHUANSPEED=" + CS_BINARY + " DATA_PATH=" + r.dir + "/synth SAVE=" + r.dir +
                          "/run bash examples/baichuan/" + script + " > " + r.dir + "/out.log 2> " + r.dir + "/err.log";
  const int st = std::system(cmd.c_str());
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.out = read_text(r.dir + "/out.log");
  r.err = read_text(r.dir + "/err.log");
  return r;
}

TEST(Examples, ZeroSevenBScriptScaledDownTrainsOnTwoRanks) {
  if (std::system("mpirun --version > /dev/null 2>&1") != 0) GTEST_SKIP() << "mpirun not installed";
  const ExampleRun r = run_example("pretrain_baichuan_zero_tiny.sh", "zero_tiny");
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string text = read_text(r.dir + "/run/train.log");
  EXPECT_EQ(test::count_matching_lines(text, " iteration       60/      60 |"), 1) << text;
  EXPECT_TRUE(fs::exists(r.dir + "/run/iter_0000060/optim-tp00-pp000-dp000.safetensors"));
  // ZeRO stage 2 from the ds_config, and its tuning keys named once as having no effect.
  EXPECT_NE(r.err.find("keys with no effect here"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("error"), std::string::npos) << r.err;
  fs::remove_all(r.dir);
}

TEST(Examples, ReadmeThirteenBScriptScaledDownTrainsTensorParallelOnTwoRanks) {
  if (std::system("mpirun --version > /dev/null 2>&1") != 0) GTEST_SKIP() << "mpirun not installed";
  const ExampleRun r = run_example("pretrain_baichuan_readme_13B_tiny.sh", "readme13_tiny");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(test::count_matching_lines(r.out, " iteration       40/      40 |"), 1) << r.out;
  EXPECT_NE(r.err.find("tensor-parallel over 2 with sequence parallelism"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::exists(r.dir + "/run/iter_0000040/model-tp01-pp000.safetensors"));
  EXPECT_EQ(r.err.find("error"), std::string::npos) << r.err;
  fs::remove_all(r.dir);
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
