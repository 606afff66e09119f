// The native checkpoint format: layout-free reading (tensors whose values encode their global
// coordinates, saved as one layout and read back as another), atomic commit (a crashed write
// leaves the previous checkpoint loadable), the latest file, keep-last pruning, and bad input.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <limits>

#include "checkpoint/native.h"

namespace cs {
namespace {
namespace fs = std::filesystem;

std::string fresh_dir(const std::string& tag) {
  const std::string d = ::testing::TempDir() + "/cs_native_" + tag + "_" + std::to_string(getpid());
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// value(r, c) = 1000 r + c: any misplaced element is visible.
std::vector<float> coords(int64_t r0, int64_t rows, int64_t c0, int64_t cols) {
  std::vector<float> v(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) v[size_t(r * cols + c)] = float(1000 * (r0 + r) + c0 + c);
  return v;
}

// Two shards claiming the same rows while no shard holds the others: as many elements as the
// tensor has, so counting alone passes, and the missing rows would be left as whatever the
// destination held. Both the read and the read of a box inside the overlap must say so.
TEST(NativeCheckpoint, OverlapHidingAGapIsAnError) {
  const std::string root = fresh_dir("overlap_gap");
  const Shape g{4, 3};
  auto a = coords(0, 2, 0, 3);
  {
    CheckpointWriter w(root, 1);
    w.add_shard("model-tp00-pp000.safetensors", {{"w", Tensor(a.data(), {2, 3}), g, {0, 0}}});
    w.add_shard("model-tp01-pp000.safetensors", {{"w", Tensor(a.data(), {2, 3}), g, {0, 0}}});
    w.commit({{"iteration", 1}});
  }
  CheckpointReader r(root, 1);
  EXPECT_EQ(r.stored_elements("w"), g.numel());
  std::vector<float> all(12, -1.f);
  try {
    r.read_all("w", g, all.data());
    ADD_FAILURE() << "rows 2-3 read from nowhere";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("overlapping shards"), std::string::npos) << e.what();
  }
  std::vector<float> row(3);
  EXPECT_THROW(r.read("w", {1, 0}, Shape{1, 3}, row.data()), Error);
}

// Slice metadata whose start + count overflows int64 (a corrupt or foreign shard): each is one
// error naming the tensor, decided without computing the overflowing sum (undefined behaviour,
// which the sanitizer build stops on).
TEST(NativeCheckpoint, SliceBoundsThatOverflowAreErrors) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  struct Case {
    const char* tag;
    Shape global;
    std::vector<int64_t> offset;
    std::vector<RowBlock> blocks;
    const char* expect;
  };
  const Case cases[] = {
      {"rows", Shape{4, 3}, {kMax - 1, 0}, {}, "2 rows from row 9223372036854775806 lie outside the global shape [4, 3]"},
      {"row_block", Shape{4, 3}, {0, 0}, {{0, 1}, {kMax - 1, 1}}, "1 rows from row 9223372036854775806 lie outside"},
      {"columns", Shape{2, 3}, {0, kMax - 1}, {}, "3 columns from column 9223372036854775806 lie outside"},
      {"blocks_sum", Shape{kMax, 3}, {0, 0}, {{0, kMax}, {0, kMax}}, "row blocks hold more rows than the slice's 2"},
      {"negative_global", Shape{-4, 3}, {0, 0}, {}, "global shape [-4,3] has a negative size"},
  };
  auto v = coords(0, 2, 0, 3);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.tag);
    const std::string root = fresh_dir(std::string("overflow_") + c.tag);
    {
      CheckpointWriter w(root, 1);
      w.add_shard("model-tp00-pp000.safetensors", {{"w", Tensor(v.data(), {2, 3}), c.global, c.offset, c.blocks}});
      w.commit({{"iteration", 1}});
    }
    try {
      CheckpointReader r(root, 1);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("tensor w: " + std::string(c.expect)), std::string::npos) << msg;
    }
  }
}

TEST(NativeCheckpoint, SavedAsRowShardsReadAsColumnShardsAndWhole) {
  const std::string root = fresh_dir("layout");
  const Shape g{7, 6};
  // Saved as "TP = 2 by rows" (rows 0-3 and 4-6) plus a replicated 1-D tensor saved once.
  auto a = coords(0, 4, 0, 6), b = coords(4, 3, 0, 6), n = coords(0, 1, 0, 6);
  {
    CheckpointWriter w(root, 5);
    w.add_shard("model-tp00-pp000.safetensors", {{"w", Tensor(a.data(), {4, 6}), g, {0, 0}},
                                                 {"norm", Tensor(n.data(), {6}), Shape{6}, {0}}});
    w.add_shard("model-tp01-pp000.safetensors", {{"w", Tensor(b.data(), {3, 6}), g, {4, 0}}});
    w.commit({{"iteration", 5}});
  }
  EXPECT_EQ(latest_iteration(root), 5);
  CheckpointReader r(root, 5);
  EXPECT_EQ(r.global_shape("w"), g);
  // As "TP = 3 by columns": columns [2, 4) of every row.
  std::vector<float> got(7 * 2);
  r.read("w", {0, 2}, Shape{7, 2}, got.data());
  EXPECT_EQ(got, coords(0, 7, 2, 2));
  // A box straddling both saved shards.
  std::vector<float> box(3 * 4);
  r.read("w", {2, 1}, Shape{3, 4}, box.data());
  EXPECT_EQ(box, coords(2, 3, 1, 4));
  std::vector<float> all(42), norm(6);
  r.read_all("w", g, all.data());
  EXPECT_EQ(all, coords(0, 7, 0, 6));
  r.read_all("norm", Shape{6}, norm.data());
  EXPECT_EQ(norm, n);
  EXPECT_THROW(r.read_all("w", Shape{6, 7}, all.data()), Error);  // another model size
}

TEST(NativeCheckpoint, ACrashedWriteLeavesThePreviousCheckpoint) {
  const std::string root = fresh_dir("crash");
  std::vector<float> v1 = {1, 2, 3}, v2 = {4, 5, 6};
  {
    CheckpointWriter w(root, 10);
    w.add_shard("model-tp00-pp000.safetensors", {{"x", Tensor(v1.data(), {3}), Shape{3}, {0}}});
    w.commit({{"iteration", 10}});
  }
  {  // the process "dies" before commit: here the writer is destroyed uncommitted...
    CheckpointWriter w(root, 20);
    w.add_shard("model-tp00-pp000.safetensors", {{"x", Tensor(v2.data(), {3}), Shape{3}, {0}}});
  }
  EXPECT_FALSE(fs::exists(root + "/iter_0000020.tmp"));
  // ...and a SIGKILL leaves a .tmp folder behind, which readers ignore.
  fs::create_directories(root + "/iter_0000030.tmp");
  std::ofstream(root + "/iter_0000030.tmp/model-tp00-pp000.safetensors") << "partial";
  EXPECT_EQ(latest_iteration(root), 10);
  EXPECT_EQ(incomplete_checkpoints(root).size(), 1u);
  std::vector<float> got(3);
  CheckpointReader(root, 10).read_all("x", Shape{3}, got.data());
  EXPECT_EQ(got, v1);
}

TEST(NativeCheckpoint, KeepLastPrunesOnlyAfterTheNewOneIsComplete) {
  const std::string root = fresh_dir("keep");
  std::vector<float> v = {1};
  for (int it : {1, 2, 3, 4}) {
    CheckpointWriter w(root, it);
    w.add_shard("m.safetensors", {{"x", Tensor(v.data(), {1}), Shape{1}, {0}}});
    w.commit({{"iteration", it}}, /*keep_last=*/2);
  }
  EXPECT_FALSE(fs::exists(root + "/iter_0000002"));
  EXPECT_TRUE(fs::exists(root + "/iter_0000003/meta.json"));
  EXPECT_TRUE(fs::exists(root + "/iter_0000004/meta.json"));
  EXPECT_EQ(latest_iteration(root), 4);
}

// A run resumed from an older iteration (--ckpt-step) into its own folder: the abandoned later
// checkpoints neither count towards --keep-last nor push the new one out.
TEST(NativeCheckpoint, KeepLastCountsNoLaterIteration) {
  const std::string root = fresh_dir("keep_older");
  std::vector<float> v = {1};
  auto save = [&](int it) {
    CheckpointWriter w(root, it);
    w.add_shard("m.safetensors", {{"x", Tensor(v.data(), {1}), Shape{1}, {0}}});
    w.commit({{"iteration", it}}, /*keep_last=*/2);
  };
  for (int it : {10, 20, 30, 40}) save(it);  // keeps 30 and 40
  save(31);                                  // resumed from 30: keeps 30 and 31, leaves 40
  EXPECT_TRUE(fs::exists(root + "/iter_0000030/meta.json"));
  EXPECT_TRUE(fs::exists(root + "/iter_0000031/meta.json"));
  EXPECT_TRUE(fs::exists(root + "/iter_0000040/meta.json"));
  EXPECT_EQ(latest_iteration(root), 31);
  save(32);
  EXPECT_FALSE(fs::exists(root + "/iter_0000030"));
  EXPECT_TRUE(fs::exists(root + "/iter_0000031/meta.json"));
  EXPECT_EQ(latest_iteration(root), 32);
  // By number, not by name: iter_10000000 sorts before iter_9999999 as text.
  save(9999999);
  save(10000000);
  EXPECT_FALSE(fs::exists(root + "/iter_0000032"));
  EXPECT_TRUE(fs::exists(root + "/iter_9999999/meta.json"));
  EXPECT_TRUE(fs::exists(root + "/iter_10000000/meta.json"));
  EXPECT_EQ(latest_iteration(root), 10000000);
}

TEST(NativeCheckpoint, BadLatestFileAndMissingFolderAreClearErrors) {
  const std::string root = fresh_dir("bad");
  EXPECT_EQ(latest_iteration(root), -1);
  std::ofstream(root + "/latest_checkpointed_iteration.txt") << "12abc\n";
  try {
    latest_iteration(root);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("latest_checkpointed_iteration.txt"), std::string::npos);
  }
  std::ofstream(root + "/latest_checkpointed_iteration.txt") << "7\n";
  try {
    latest_iteration(root);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("iter_0000007"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace cs
