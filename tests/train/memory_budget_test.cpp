// Sizes are checked before anything is allocated: checked arithmetic (core/checked.h, Shape::numel,
// ModelConfig::validate's parameter count), the memory available (MemAvailable and the cgroup),
// and the refusal's wording and exit status: the config's file and sizes when the model alone
// does not fit, the flags that size the activations otherwise.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <limits>

#include "core/checked.h"
#include "core/tensor.h"
#include "model/config.h"
#include "train/memory_budget.h"

namespace cs {
namespace {

using testing::HasSubstr;
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

TEST(CheckedSizes, OverflowIsAnErrorNamingTheQuantity) {
  EXPECT_EQ(checked_mul(3, 4, "x"), 12);
  EXPECT_EQ(checked_add(kMax - 1, 1, "x"), kMax);
  try {
    checked_mul(kMax / 2, 3, "--train-iters x --global-batch-size", 2);
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_THAT(e.what(), HasSubstr("--train-iters x --global-batch-size: 4611686018427387903 x 3 overflows"));
  }
  EXPECT_THROW(checked_add(kMax, 1, "a file's size"), Error);
  // A shape's element count never wraps: a missed validation is a bug, not a small buffer.
  EXPECT_THROW((Shape{int64_t(1) << 40, int64_t(1) << 40}.numel()), InternalError);
  EXPECT_EQ((Shape{int64_t(1) << 31, 0, int64_t(1) << 40}.numel()), 0);
}

ModelConfig tiny() { return model_preset("tiny"); }

TEST(CheckedSizes, ConfigsThatCannotBeCountedAreRefused) {
  ModelConfig c = tiny();
  c.vocab_size = 1'000'000'000'000;
  EXPECT_THAT([&] { c.validate(); }, testing::ThrowsMessage<UsageError>(HasSubstr(
      "vocab size 1000000000000 is more than 2147483647: token ids are 32-bit")));
  c = tiny();
  c.hidden_size = 3'000'000'000;  // 4 D^2 overflows int64
  c.num_heads = 3;
  EXPECT_THAT([&] { c.validate(); }, testing::ThrowsMessage<UsageError>(HasSubstr(
      "hidden size 3000000000, ffn hidden size 80 and 2 layers make more than 5.76e+17 parameters")));
  c = tiny();
  c.num_layers = kMax / 4;
  EXPECT_THROW(c.validate(), UsageError);
  EXPECT_THROW(c.num_params(), InternalError);  // counted without validation: a bug
  c = tiny();
  c.num_layers = 1'000'000'000;  // countable (2.2e13 parameters): the memory check's to refuse
  EXPECT_NO_THROW(c.validate());
  EXPECT_EQ(padded_vocab_size(101, 128, 1), 128);
  EXPECT_THROW(padded_vocab_size(kMax - 5, 128, 1), UsageError);
}

TEST(MemoryBudget, AvailableMemoryIsKnownOnLinux) {
  const AvailableMemory m = available_memory();
  EXPECT_GT(m.bytes, 0);
  EXPECT_FALSE(m.source.empty());
}

// The cgroup's headroom on a made-up /sys/fs/cgroup: v2 and v1, the tightest level wins, "no
// limit" levels and missing folders (a container's namespaced view) are skipped.
TEST(MemoryBudget, CgroupHeadroomIsTheTightestLimitLessUsagePlusInactiveCache) {
  namespace fs = std::filesystem;
  const std::string root = testing::TempDir() + "/cs_cgroup_" + std::to_string(getpid());
  fs::remove_all(root);
  auto put = [&](const std::string& rel, const std::string& text) {
    fs::create_directories(fs::path(root + rel).parent_path());
    std::ofstream(root + rel) << text;
  };
  // v2: /a/b limited to 1000000 with 400000 used (100000 of it inactive cache); /a has no limit,
  // the root a looser one; the process's own folder /a/b/c is missing from this view.
  put("/proc_v2", "0::/a/b/c\n");
  put("/fs/a/b/memory.max", "1000000\n");
  put("/fs/a/b/memory.current", "400000\n");
  put("/fs/a/b/memory.stat", "anon 300000\ninactive_file 100000\nactive_file 0\n");
  put("/fs/a/memory.max", "max\n");
  put("/fs/memory.max", "5000000\n");
  put("/fs/memory.current", "1000000\n");
  std::string where;
  EXPECT_EQ(cgroup_headroom(root + "/proc_v2", root + "/fs", where), 700000);
  EXPECT_EQ(where, "the memory cgroup limit of " + root + "/fs/a/b");
  // v1: the memory controller's own line and hierarchy; "no limit" is a number near 2^63.
  put("/proc_v1", "9:pids:/x\n4:cpu,memory:/x\n0::/\n");
  put("/fs1/memory/x/memory.limit_in_bytes", "9223372036854771712\n");
  put("/fs1/memory/memory.limit_in_bytes", "2000000\n");
  put("/fs1/memory/memory.usage_in_bytes", "500000\n");
  put("/fs1/memory/memory.stat", "cache 1\ntotal_inactive_file 50000\n");
  EXPECT_EQ(cgroup_headroom(root + "/proc_v1", root + "/fs1", where), 1550000);
  EXPECT_EQ(where, "the memory cgroup limit of " + root + "/fs1/memory");
  // No limit anywhere: unknown.
  put("/proc_none", "0::/\n");
  EXPECT_EQ(cgroup_headroom(root + "/proc_none", root + "/empty", where), -1);
}

TEST(MemoryBudget, TheRefusalNamesWhatIsTooLarge) {
  const AvailableMemory avail{int64_t(1) << 30, "MemAvailable in /proc/meminfo"};
  MemoryRequest req;
  req.micro_batch = 2;
  req.batch_source = "--micro-batch-size 2 and --seq-length 64";
  // A tiny model fits a GiB.
  ModelConfig c = tiny();
  EXPECT_EQ(memory_refusal(c, req, memory_plan(c, req), avail), "");
  // The model alone does not: the config file, its sizes, exit status 1.
  c.num_layers = 100000;
  req.config_file = "/m/config.json";
  int code = 0;
  std::string why = memory_refusal(c, req, memory_plan(c, req), avail, &code);
  EXPECT_EQ(code, 1);
  EXPECT_THAT(why, HasSubstr("[memory] /m/config.json: vocab_size 101, hidden_size 48, intermediate_size 80, "
                             "num_hidden_layers 100000 make a model of 2.083e+09 parameters, whose parameters "
                             "and gradients need 15.52 GiB, more than the 1.00 GiB this machine has available "
                             "(MemAvailable in /proc/meminfo). Hint: check these sizes in /m/config.json"));
  // From the flags: named as flags, a usage error (2); training adds Adam's state.
  req.config_file.clear();
  req.training = true;
  why = memory_refusal(c, req, memory_plan(c, req), avail, &code);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(why, HasSubstr("[memory] the model's flags: --vocab-size 101 (padded), --hidden-size 48, "
                             "--ffn-hidden-size 80, --num-layers 100000 make a model of 2.083e+09 parameters, "
                             "whose parameters, gradients and Adam's state need 31.04 GiB"));
  // The model fits but its activations do not: the batch's flags.
  c = tiny();
  req.micro_batch = 1'000'000;
  req.batch_source = "--micro-batch-size 1000000 and --seq-length 64";
  why = memory_refusal(c, req, memory_plan(c, req), avail, &code);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(why, HasSubstr("[memory] --micro-batch-size 1000000 and --seq-length 64: the activations and buffers "
                             "need "));
  EXPECT_THAT(why, HasSubstr("Hint: a smaller --micro-batch-size or --seq-length, or --recompute-granularity full; "
                             "chuanspeed plan shows where the memory goes"));
  // Unknown memory (not Linux): nothing is refused.
  EXPECT_EQ(memory_refusal(c, req, memory_plan(c, req), AvailableMemory{}), "");
}

TEST(MemoryBudget, InferenceHoldsNoOptimizerStateAndGenerateItsKvCache) {
  const ModelConfig c = tiny();
  MemoryRequest req;
  const Plan eval = memory_plan(c, req);
  req.training = true;
  const Plan train = memory_plan(c, req);
  // Adam m, v; the trainer's token buffers (3 x 65 int32) and one sample's index (24 bytes)
  EXPECT_EQ(train.peak_bytes - eval.peak_bytes, double(c.num_params()) * 8 + 3 * 65 * 4 + 24);
  req.training = false;
  req.kv_cache = true;
  const Plan gen = memory_plan(c, req);
  EXPECT_EQ(gen.peak_bytes - eval.peak_bytes, 2.0 * 2 * 64 * 48 * 4);  // K, V x 2 layers x 64 positions x 48
}

// Sizes far past any machine are planned without overflow (doubles, and the activations scaled
// from one token's beyond 2^60 bytes).
TEST(MemoryBudget, HugeBatchesArePlannedWithoutOverflow) {
  ModelConfig c = tiny();
  c.max_seq_length = 1'000'000'000;
  MemoryRequest req;
  req.micro_batch = 1'000'000'000;
  const Plan p = memory_plan(c, req);
  EXPECT_GT(p.peak_bytes, 1e18 * 48 * 4);
  EXPECT_TRUE(std::isfinite(p.peak_bytes));
}

}  // namespace
}  // namespace cs
