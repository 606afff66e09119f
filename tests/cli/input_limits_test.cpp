// Inputs that used to hang or exhaust memory are one line and exit 1: a FIFO (or a directory)
// where a weight, dataset, config, tokenizer or corpus file belongs (opening a FIFO for reading
// waits for a writer: every command runs under `timeout`, so a regression fails here instead of
// hanging), and a corpus record longer than --max-record-bytes (SentencePiece's memory grows with
// one record's length), named by file, line and record number.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "run_util.h"

namespace cs::test {
namespace {

namespace fs = std::filesystem;
const std::string kTok = std::string(CS_SOURCE_DIR) + "/assets/demo/tokenizer";

std::string tmp(const std::string& name) {
  const auto d = fs::path(testing::TempDir()) / ("cs_limits_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

// The command under a 30 s limit: a hang shows as a kill, not as a test that never ends.
RunResult run_limited(const std::string& args) { return run_binary(args, 30); }

void replace_with_fifo(const std::string& path) {
  fs::remove(path);
  ASSERT_EQ(::mkfifo(path.c_str(), 0644), 0) << path;
}

TEST(InputLimits, AFifoWhereAFileBelongsIsOneLineNotAHang) {
  const std::string d = tmp("fifo");
  ASSERT_EQ(run_binary("init --model tiny --vocab-size 1024 --save " + d + "/model").status, 0);
  ASSERT_EQ(run_binary("synth-data --output-prefix " + d + "/data --vocab-size 1024 --num-docs 8").status, 0);
  std::ofstream(d + "/in.jsonl") << "{\"text\": \"a\"}\n";
  fs::copy(kTok, d + "/tok");
  fs::copy(d + "/model", d + "/model_cfg", fs::copy_options::recursive);
  fs::copy(d + "/data.idx", d + "/data_bin.idx");
  fs::copy(d + "/data.bin", d + "/data_bin.bin");
  replace_with_fifo(d + "/model/model.safetensors");
  replace_with_fifo(d + "/model_cfg/config.json");
  replace_with_fifo(d + "/data_bin.bin");
  replace_with_fifo(d + "/tok/tokenizer.model");
  replace_with_fifo(d + "/corpus.jsonl");
  replace_with_fifo(d + "/ds_config.json");
  const std::string pre = "preprocess --output-prefix " + d + "/out --tokenizer-name-or-path ";
  const struct {
    std::string args, fifo;
  } cases[] = {
      {"eval --load " + d + "/model --data-path " + d + "/data --seq-length 8", d + "/model/model.safetensors"},
      {"generate --load " + d + "/model_cfg --prompt-ids 1,2 --max-new-tokens 2", d + "/model_cfg/config.json"},
      {"eval --load " + d + "/model_cfg --data-path " + d + "/data_bin --seq-length 8", d + "/data_bin.bin"},
      {pre + d + "/tok --input " + d + "/in.jsonl", d + "/tok/tokenizer.model"},
      {pre + kTok + " --input " + d + "/corpus.jsonl", d + "/corpus.jsonl"},
      {"train --model tiny --vocab-size 1024 --train-iters 1 --lr 1e-3 --data-path " + d + "/data --deepspeed "
       "--deepspeed_config " + d + "/ds_config.json", d + "/ds_config.json"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.args);
    const RunResult r = run_limited(c.args);
    EXPECT_EQ(r.status, 1) << (r.status == -1 ? "hung on the FIFO" : r.err);
    EXPECT_EQ(count_matching_lines(r.err, "error"), 1) << r.err;
    EXPECT_NE(r.err.find(c.fifo + ": "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("not a regular file (a FIFO (named pipe))"), std::string::npos) << r.err;
  }
}

// A JSON Lines record, a JSON array element and a Parquet row over the limit; the default limit
// (8 MiB) refuses a 9 MiB record as soon as it is read, before any tokenizing.
TEST(InputLimits, ARecordLongerThanMaxRecordBytesIsNamed) {
  const std::string d = tmp("record");
  const std::string pre = "preprocess --output-prefix " + d + "/out --tokenizer-name-or-path " + kTok + " --input ";
  {
    std::ofstream f(d + "/lines.jsonl");
    f << "{\"text\": \"short\"}\n\n{\"text\": \"" << std::string(3000, 'x') << "\"}\n";
    std::ofstream a(d + "/array.json");
    a << "[\n{\"text\": \"short\"},\n{\"text\": \"a\"},\n{\"text\": \"" << std::string(3000, 'y') << "\"}\n]\n";
    std::ofstream big(d + "/big.jsonl");
    big << "{\"text\": \"" << std::string(9 << 20, 'z') << "\"}\n";
  }
  const std::string hint = "Hint: split such texts into several records, or raise --max-record-bytes";
  const struct {
    std::string args, where;
  } cases[] = {
      {d + "/lines.jsonl --max-record-bytes 2KB", d + "/lines.jsonl:3 (record 2): the record is longer than "
                                                      "--max-record-bytes 2000; one record"},
      {d + "/array.json --max-record-bytes 2KiB", d + "/array.json:4 (record 3): the record is longer than "
                                                      "--max-record-bytes 2048"},
      {std::string(CS_SOURCE_DIR) + "/assets/demo/alpaca_demo.parquet --handler-name alpaca --max-record-bytes 10",
       "alpaca_demo.parquet row 1: the record is longer than --max-record-bytes 10"},
      {d + "/big.jsonl", d + "/big.jsonl:1 (record 1): the record is longer than --max-record-bytes 8388608 (8.0 MiB)"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.args);
    const RunResult r = run_limited(pre + c.args);
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_EQ(count_matching_lines(r.err, "error"), 1) << r.err;
    EXPECT_NE(r.err.find(c.where), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(hint), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(d + "/out_text_document.bin"));
  }
  // Raised, the same inputs go through; a bad value is a usage error.
  EXPECT_EQ(run_limited(pre + d + "/lines.jsonl --max-record-bytes 4KiB").status, 0);
  EXPECT_EQ(run_limited(pre + d + "/array.json --max-record-bytes 0").status, 0);
  const RunResult bad = run_limited(pre + d + "/lines.jsonl --max-record-bytes lots");
  EXPECT_EQ(bad.status, 2) << bad.err;
  EXPECT_NE(bad.err.find("--max-record-bytes lots: expected a size"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace cs::test
