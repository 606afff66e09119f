// Sizes from config.json, meta.json and flags that no machine can hold are refused before anything
// is allocated: one line naming the file (exit 1) or the flags (exit 2), what was needed and what
// the machine has, and a peak RSS of a process that allocated nothing (the refusals used to come
// after a terabyte-sized allocation failed, or after gigabytes of parameter specs). plan says the
// same about such configs and never overflows.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "run_util.h"

extern char** environ;

namespace cs::test {
namespace {

namespace fs = std::filesystem;

struct Outcome {
  int status = -1;
  std::string err, out;
  double rss_mb = 0;  // the command's peak resident set
};

// Runs the binary (sh -c 'exec ...', so wait4's usage is the binary's own) under a 60 s limit
// and, outside the sanitizer build (whose shadow memory takes terabytes of address space), 8 GB of
// address space: a regression fails its allocation instead of taking the machine's memory.
Outcome run_measured(const std::string& args) {
  static int n = 0;
  const std::string base = testing::TempDir() + "/cs_size_" + std::to_string(getpid()) + "_" + std::to_string(n++);
#ifdef __SANITIZE_ADDRESS__
  const std::string limit;
#else
  const std::string limit = "ulimit -v 8000000; ";
#endif
  const std::string cmd = limit + "exec timeout -s KILL 60 " + std::string(CS_BINARY) + " " + args + " >" + base +
                          ".out 2>" + base + ".err";
  const char* argv[] = {"sh", "-c", cmd.c_str(), nullptr};
  pid_t pid = 0;
  Outcome o;
  if (posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ) != 0) return o;
  int st = 0;
  struct rusage ru {};
  wait4(pid, &st, 0, &ru);
  o.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  o.rss_mb = double(ru.ru_maxrss) / 1024.0;
  auto slurp = [](const std::string& p) {
    std::ifstream f(p);
    return std::string(std::istreambuf_iterator<char>(f), {});
  };
  o.err = slurp(base + ".err");
  o.out = slurp(base + ".out");
  return o;
}

class ModelSize : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = testing::TempDir() + "/cs_model_size_" + std::to_string(getpid());
    fs::remove_all(dir_);
    ASSERT_EQ(run_binary("init --model tiny --vocab-size 128 --save " + dir_ + "/model").status, 0);
    ASSERT_EQ(run_binary("synth-data --output-prefix " + dir_ + "/data --vocab-size 128 --num-docs 8").status, 0);
    ASSERT_EQ(run_binary("convert --input " + dir_ + "/model --output " + dir_ + "/native").status, 0);
  }
  // A copy of the tiny model whose config.json has KEY_VALUES set; returns its directory.
  static std::string with_config(const std::string& name, const nlohmann::json& key_values) {
    const std::string d = dir_ + "/" + name;
    fs::remove_all(d);
    fs::copy(dir_ + "/model", d);
    std::ifstream in(d + "/config.json");
    nlohmann::json j = nlohmann::json::parse(in);
    j.update(key_values);
    std::ofstream(d + "/config.json") << j.dump(2);
    return d;
  }
  // Expects one error line with STATUS holding every piece of WANT, from a process that stayed small.
  static void expect_refused(const std::string& args, int status, const std::vector<std::string>& want) {
    SCOPED_TRACE(args);
    const Outcome o = run_measured(args);
    EXPECT_EQ(o.status, status) << o.err;
    EXPECT_EQ(count_matching_lines(o.err, "error"), 1) << o.err;
    for (const std::string& w : want) EXPECT_NE(o.err.find(w), std::string::npos) << "missing: " << w << "\n" << o.err;
    EXPECT_LT(o.rss_mb, 400) << "allocated before refusing";
  }
  static std::string dir_;
};
std::string ModelSize::dir_;

TEST_F(ModelSize, ConfigFileSizesAreRefusedNamingTheFile) {
  const std::string eval = " --data-path " + dir_ + "/data --seq-length 16";
  const struct {
    std::string name;
    nlohmann::json set;
    std::vector<std::string> want;
  } cases[] = {
      {"vocab_1e12", {{"vocab_size", 1000000000000}}, {"vocab size 1000000000000 is more than 2147483647"}},
      {"vocab_1e8", {{"vocab_size", 100000000}, {"hidden_size", 4096}, {"num_attention_heads", 32},
                     {"intermediate_size", 11008}},
       {"vocab_size 100000000, hidden_size 4096, intermediate_size 11008, num_hidden_layers 2 make a model of "
        "8.196e+11 parameters, whose parameters and gradients need 5.96 TiB, more than the ",
        "Hint: check these sizes in"}},
      {"ffn_1e12", {{"intermediate_size", 1000000000000}}, {"intermediate_size 1000000000000", "need 2.05 PiB"}},
      {"layers_1e9", {{"num_hidden_layers", 1000000000}}, {"num_hidden_layers 1000000000 make a model of"}},
      {"hidden_3e9", {{"hidden_size", 3000000000}, {"num_attention_heads", 3}},
       {"beyond any machine (their count overflows 64-bit sizes)"}},
  };
  for (const auto& c : cases) {
    const std::string d = with_config(c.name, c.set);
    std::vector<std::string> want = c.want;
    want.push_back(d + "/config.json: ");
    expect_refused("eval --load " + d + eval, 1, want);
  }
  // generate: one sequence of the config's positions and its KV cache.
  const std::string d = with_config("positions_1e9", {{"max_position_embeddings", 1000000000}});
  expect_refused("generate --load " + d + " --prompt-ids 1,2", 1,
                 {"[memory] " + d + "/config.json: the model's 1000000000 positions: the activations and buffers need",
                  "Hint: check max_position_embeddings / model_max_length in " + d + "/config.json"});
}

TEST_F(ModelSize, MetaJsonSizesAreRefusedNamingTheFile) {
  const std::string root = dir_ + "/native_1e9";
  fs::remove_all(root);
  fs::copy(dir_ + "/native", root, fs::copy_options::recursive);
  const std::string meta = root + "/iter_0000000/meta.json";
  std::ifstream in(meta);
  nlohmann::json j = nlohmann::json::parse(in);
  j["config"]["num_hidden_layers"] = 1000000000;
  std::ofstream(meta) << j.dump(2);
  expect_refused("eval --load " + root + " --data-path " + dir_ + "/data --seq-length 16", 1,
                 {"[memory] " + meta + ": vocab_size 128, hidden_size 48, intermediate_size 80, "
                  "num_hidden_layers 1000000000 make a model of"});
  // convert streams (no memory check) but holds the layer count to the tensors the files hold.
  expect_refused("convert --input " + root + " --output " + dir_ + "/out_1e9", 1,
                 {meta + ": num_hidden_layers 1000000000 means 7000000003 tensors, but the weights hold 17"});
  const std::string hf = with_config("convert_layers_1e9", {{"num_hidden_layers", 1000000000}});
  expect_refused("convert --input " + hf + " --output " + dir_ + "/out_hf_1e9", 1,
                 {hf + "/config.json: num_hidden_layers 1000000000 means 7000000003 tensors, but the weights hold 17"});
}

TEST_F(ModelSize, FlagSizesAreUsageErrors) {
  const std::string train = "train --model tiny --vocab-size 101 --lr 1e-3 --train-iters 2 --data-path " + dir_ + "/data";
  expect_refused(train + " --seq-length 1000000000", 2,
                 {"[memory] --micro-batch-size 1 and --seq-length 1000000000 (--train-iters 2, --global-batch-size 1): the "
                  "activations and buffers need", "Hint: a smaller --micro-batch-size"});
  expect_refused(train + " --seq-length 16 --micro-batch-size 1000000000", 2,
                 {"[memory] --micro-batch-size 1000000000 and --seq-length 16"});
  expect_refused(train + " --seq-length 16 --train-iters 1000000000000000000 --global-batch-size 100"
                         " --micro-batch-size 100",
                 2, {"--train-iters x --global-batch-size: 1000000000000000000 x 100 overflows"});
  expect_refused("train --model tiny --vocab-size 1000000000000 --lr 1e-3 --train-iters 2 --data-path x", 2,
                 {"vocab size 1000000000000 is more than 2147483647"});
  expect_refused("init --model tiny --vocab-size 101 --num-layers 1000000000 --save " + dir_ + "/x", 2,
                 {"[memory] the model's flags: --vocab-size 128 (padded), --hidden-size 48, --ffn-hidden-size 80, "
                  "--num-layers 1000000000 make a model of"});
  expect_refused("init --model tiny --vocab-size 101 --hidden-size 3000000000 --num-attention-heads 3 --save " +
                     dir_ + "/x", 2, {"beyond any machine"});
  EXPECT_FALSE(fs::exists(dir_ + "/x"));
}

TEST_F(ModelSize, PlanSaysTheSameAndNeverOverflows) {
  // A config no machine holds: planned (exit 0), marked as not fitting here, with train's words.
  const std::string d = with_config("plan_vocab_1e8", {{"vocab_size", 100000000}, {"hidden_size", 4096},
                                                       {"num_attention_heads", 32}, {"intermediate_size", 11008}});
  const Outcome p = run_measured("plan --backend cpu --load " + d + " --seq-length 16");
  EXPECT_EQ(p.status, 0) << p.err;
  EXPECT_NE(p.out.find("DOES NOT FIT (train refuses it here)"), std::string::npos) << p.out;
  const Outcome t = run_measured("train --load " + d + " --lr 1e-3 --train-iters 1 --seq-length 16 --data-path " +
                                 dir_ + "/data");
  EXPECT_EQ(t.status, 1) << t.err;
  ASSERT_NE(t.err.find("[memory]"), std::string::npos) << t.err;
  ASSERT_NE(t.err.find(", more than the"), std::string::npos) << t.err;
  const std::string said = t.err.substr(t.err.find("[memory]"), t.err.find(", more than the") - t.err.find("[memory]"));
  EXPECT_NE(p.err.find("note: train here would say: " + said), std::string::npos) << p.err << "\n" << t.err;
  // Sizes that cannot be counted: the same error as every command's.
  const std::string big = with_config("plan_vocab_1e12", {{"vocab_size", 1000000000000}});
  const Outcome b = run_measured("plan --load " + big);
  EXPECT_EQ(b.status, 1);
  EXPECT_NE(b.err.find(big + "/config.json: [model] vocab size 1000000000000 is more than 2147483647"),
            std::string::npos) << b.err;
  // Flags whose products pass 2^63: planned in doubles, on both backends.
  for (const char* backend : {"cpu", "gpu"}) {
    const Outcome h = run_measured(std::string("plan --backend ") + backend + " --model tiny --vocab-size 101 "
                                   "--micro-batch-size 1000000000 --seq-length 1000000000 --json");
    EXPECT_EQ(h.status, 0) << h.err;
    const auto j = nlohmann::json::parse(h.out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << h.out;
    EXPECT_GT(j["peak_bytes"].get<double>(), 1e20);
    if (std::string(backend) == "cpu") {
      EXPECT_FALSE(j["fits_here"].get<bool>());
    }
  }
}

}  // namespace
}  // namespace cs::test
