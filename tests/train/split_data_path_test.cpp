// Megatron-core's per-split data (--train-data-path, --valid-data-path, --test-data-path instead
// of --data-path and --split): each split is built from its own data, all of its documents; a
// split without a path has no dataset. Three corpora with disjoint token ranges show where every
// sample came from; the flags' conflicts are one line each, and an unreadable --valid-data-path is
// an error, not a run without validation.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "cli/run_util.h"
#include "data/indexed_dataset.h"
#include "train/datasets.h"

namespace cs {
namespace {
namespace fs = std::filesystem;

class SplitDataPath : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/cs_split_path_" + std::to_string(getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    corpus("a", 0, 30);
    corpus("b", 40, 60);
    corpus("c", 70, 100);
  }
  void TearDown() override { fs::remove_all(dir_); }
  // 20 documents of 25 tokens in [lo, hi).
  void corpus(const std::string& name, int lo, int hi) {
    IndexedDatasetWriter w(dir_ + "/" + name, DType::U16);
    for (int d = 0; d < 20; ++d) {
      std::vector<int32_t> ids;
      for (int i = 0; i < 25; ++i) ids.push_back(lo + (d * 7 + i * 3) % (hi - lo));
      w.add_item(ids.data(), int64_t(ids.size()));
      w.end_document();
    }
    w.finalize();
  }
  TrainArgs args() const {
    TrainArgs a;
    a.micro_batch = 2;
    a.global_batch = 4;
    a.train_iters = 6;
    a.seq_length = 16;
    a.eval_interval = 3;
    a.eval_iters = 2;
    a.split_data_path[0] = {dir_ + "/a"};
    a.split_data_path[1] = {dir_ + "/b"};
    a.split_data_path[2] = {dir_ + "/c"};
    return a;
  }
  std::string dir_;
};

// Every sample of a split in [lo, hi).
void expect_from(const SampleSource& s, int lo, int hi, int64_t at_least, const char* what) {
  ASSERT_NE(s.gpt, nullptr) << what;
  EXPECT_GE(s.num_samples(), at_least) << what;
  std::vector<int32_t> tok(17);
  for (int64_t i = 0; i < s.num_samples(); ++i) {
    s.gpt->sample(i, tok.data());
    for (int32_t t : tok) ASSERT_TRUE(t >= lo && t < hi) << what << " sample " << i << " token " << t;
  }
}

TEST_F(SplitDataPath, EachSplitIsItsOwnDataWhole) {
  const Datasets d = open_datasets(args(), true, false);
  expect_from(d.train_src, 0, 30, 6 * 4, "train");
  expect_from(d.valid_src, 40, 60, (6 / 3 + 1) * 2 * 4, "valid");
  expect_from(d.test_src, 70, 100, 2 * 4, "test");
  // The train split from --train-data-path is --data-path's with all documents in train: the same
  // samples in the same order.
  TrainArgs b = args();
  b.split_data_path = std::array<std::vector<std::string>, 3>{};
  b.data_path = {dir_ + "/a"};
  b.split = "100,0,0";
  const Datasets same = open_datasets(b, true, false);
  ASSERT_EQ(same.train_src.num_samples(), d.train_src.num_samples());
  std::vector<int32_t> x(17), y(17);
  for (int64_t i = 0; i < d.train_src.num_samples(); ++i) {
    d.train_src.gpt->sample(i, x.data());
    same.train_src.gpt->sample(i, y.data());
    ASSERT_EQ(x, y) << "sample " << i;
  }
  // Each split's documents all take part (not a --split share of them).
  for (const SampleSource* src : {&d.train_src, &d.valid_src, &d.test_src}) {
    const auto idx = src->gpt->datasets().at(0).doc_idx();
    const std::set<int32_t> docs(idx.begin(), idx.end());
    EXPECT_EQ(docs.size(), 20u);
  }
  // One prefix with a weight is that dataset alone, as Megatron-core reads a per-split path.
  TrainArgs w = args();
  w.split_data_path[1] = {"1.0", dir_ + "/b"};
  const Datasets weighted = open_datasets(w, true, false);
  ASSERT_EQ(weighted.valid_src.num_samples(), d.valid_src.num_samples());
  for (int64_t i = 0; i < d.valid_src.num_samples(); ++i) {
    d.valid_src.gpt->sample(i, x.data());
    weighted.valid_src.gpt->sample(i, y.data());
    ASSERT_EQ(x, y) << "valid sample " << i;
  }
  // A split without its path has no dataset.
  TrainArgs c = args();
  c.split_data_path[2].clear();
  EXPECT_FALSE(open_datasets(c, true, false).has_test());
}

TEST_F(SplitDataPath, TrainsAndEvaluatesThroughTheBinary) {
  const std::string base = "train --model tiny --vocab-size 101 --make-vocab-size-divisible-by 1 --seq-length 16 "
                           "--micro-batch-size 2 --global-batch-size 4 --lr 1e-3 --train-iters 4 --eval-interval 2 "
                           "--eval-iters 1 --log-interval 1 ";
  const std::string paths = "--train-data-path " + dir_ + "/a --valid-data-path " + dir_ + "/b --test-data-path " +
                            dir_ + "/c ";
  const auto r = test::run_binary(base + paths);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("validation loss at iteration 2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("the end of training for test data"), std::string::npos) << r.out;
  auto refused = [&](const std::string& flags, const std::string& words, int status = 2) {
    const auto e = test::run_binary(base + flags);
    EXPECT_EQ(e.status, status) << flags << "\n" << e.err;
    EXPECT_EQ(test::count_matching_lines(e.err, "error:"), 1) << e.err;
    EXPECT_NE(e.err.find(words), std::string::npos) << flags << "\n" << e.err;
  };
  refused(paths + "--data-path " + dir_ + "/a", "--data-path with --train-data-path");
  refused("--valid-data-path " + dir_ + "/b", "--valid-data-path / --test-data-path without --train-data-path");
  refused(paths + "--split 90,5,5", "--split with --train-data-path");
  refused("", "--data-path is required");
  refused("--train-data-path " + dir_ + "/a --valid-data-path 0.5", "--valid-data-path: got only the weight 0.5");
  refused("--train-data-path " + dir_ + "/a --valid-data-path " + dir_ + "/b --is-instruction-dataset --test-data-path "
          "0.5 " + dir_ + "/c 0.5 " + dir_ + "/a", "--test-data-path: --is-instruction-dataset takes one");
  refused("--train-data-path " + dir_ + "/a --valid-data-path " + dir_ + "/missing", dir_ + "/missing", 1);
}

// Megatron-core's files of data arguments train exactly as the flags they hold: --data-args-path as
// --data-path (a blend here), --per-split-data-args-path as the three per-split flags (strings,
// lists with numbers, null for no split); a file that is not what it should be is one line naming it.
TEST_F(SplitDataPath, DataArgumentFilesAreTheFlagsTheyHold) {
  const std::string base = "train --model tiny --vocab-size 101 --make-vocab-size-divisible-by 1 --seq-length 16 "
                           "--micro-batch-size 2 --global-batch-size 4 --lr 1e-3 --train-iters 4 --eval-interval 2 "
                           "--eval-iters 1 --log-interval 1 ";
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir_ + "/" + name) << text;
    return dir_ + "/" + name;
  };
  // The log without its timing fields.
  auto steps = [](const std::string& out) {
    std::string kept;
    std::istringstream in(out);
    for (std::string l; std::getline(in, l);) {
      if (l.find("validation loss at") != std::string::npos) kept += l + "\n";
      if (l.rfind(" iteration", 0) == 0) kept += l.substr(0, l.find("| elapsed")) + l.substr(l.find("| learning")) + "\n";
    }
    return kept;
  };
  const std::string blend = "0.25 " + dir_ + "/a\n0.75\t" + dir_ + "/b\n";
  const auto flags = test::run_binary(base + "--split 80,20,0 --data-path 0.25 " + dir_ + "/a 0.75 " + dir_ + "/b");
  const auto file = test::run_binary(base + "--split 80,20,0 --data-args-path " + write("blend.txt", blend));
  ASSERT_EQ(flags.status, 0) << flags.err;
  ASSERT_EQ(file.status, 0) << file.err;
  EXPECT_NE(steps(flags.out).find("validation loss at iteration 2"), std::string::npos) << flags.out;
  // (The samples/s fields differ; everything else of the line is the run's.)
  auto no_speed = [](std::string s) {
    for (size_t at; (at = s.find("samples/s/p")) != std::string::npos;) s.erase(at, s.find('\n', at) - at);
    return s;
  };
  EXPECT_EQ(no_speed(steps(file.out)), no_speed(steps(flags.out)));

  const auto per_flags = test::run_binary(base + "--train-data-path 1 " + dir_ + "/a --valid-data-path " + dir_ + "/b");
  const auto per_file = test::run_binary(
      base + "--per-split-data-args-path " +
      write("splits.json", "{\"train\": [1, \"" + dir_ + "/a\"], \"valid\": \"" + dir_ + "/b\", \"test\": null}"));
  ASSERT_EQ(per_flags.status, 0) << per_flags.err;
  ASSERT_EQ(per_file.status, 0) << per_file.err;
  EXPECT_EQ(no_speed(steps(per_file.out)), no_speed(steps(per_flags.out)));
  EXPECT_EQ(per_file.out.find("for test data"), std::string::npos) << per_file.out;

  auto refused = [&](const std::string& flags, const std::string& words, int status) {
    const auto e = test::run_binary(base + flags);
    EXPECT_EQ(e.status, status) << flags << "\n" << e.err;
    EXPECT_EQ(test::count_matching_lines(e.err, "error:"), 1) << e.err;
    EXPECT_NE(e.err.find(words), std::string::npos) << flags << "\n" << e.err;
  };
  const std::string json = dir_ + "/splits.json";
  refused("--data-args-path " + dir_ + "/blend.txt --data-path " + dir_ + "/a", "--data-args-path with --data-path", 2);
  refused("--data-args-path " + dir_ + "/blend.txt --per-split-data-args-path " + json, "one data source", 2);
  refused("--per-split-data-args-path " + json + " --train-data-path " + dir_ + "/a",
          "--per-split-data-args-path with --train-data-path", 2);
  refused("--data-args-path " + dir_ + "/nowhere.txt", "--data-args-path " + dir_ + "/nowhere.txt: cannot open it", 1);
  refused("--data-args-path " + write("empty.txt", " \n"), "empty; expected what --data-path takes", 1);
  refused("--per-split-data-args-path " + write("bad.json", "[1, 2]"), "not a JSON object", 1);
  refused("--per-split-data-args-path " + write("two.json", "{\"train\": \"" + dir_ + "/a\", \"valid\": null}"),
          "no \"test\" key", 1);
  refused("--per-split-data-args-path " + write("obj.json", "{\"train\": {}, \"valid\": null, \"test\": null}"),
          "\"train\" is object; expected a string, a list or null", 1);
  refused("--per-split-data-args-path " + write("notrain.json", "{\"train\": null, \"valid\": null, \"test\": null}"),
          "notrain.json: \"train\" holds no data", 2);
  refused("--per-split-data-args-path " + json + " --split 90,5,5", "--split with --per-split-data-args-path", 2);
  refused("--data-args-path " + write("weight.txt", "0.5"), "--data-args-path " + dir_ + "/weight.txt: got only the "
          "weight 0.5", 2);
}

}  // namespace
}  // namespace cs
