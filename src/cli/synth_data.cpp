// chuanspeed synth-data --output-prefix P --vocab-size V [--num-docs K] [--seed S]
// Writes a synthetic Megatron dataset whose documents follow a learnable rule (each document is
// an arithmetic progression of token ids modulo V with a random start and stride, lengths 8..96),
// for tests and for trying a launch script without a corpus.
#include <fmt/core.h>

#include <filesystem>
#include <vector>

#include "cli/commands.h"
#include "cli/parse.h"
#include "core/log.h"
#include "core/philox.h"
#include "data/indexed_dataset.h"

namespace cs::cli {

int synth_data_main(int argc, char** argv) {
  CLI::App app("Write a synthetic Megatron .bin/.idx dataset", "synth-data");
  std::string prefix;
  int64_t vocab = 0, docs = 64;
  uint64_t seed = 1;
  app.add_option("--output-prefix", prefix, "writes PREFIX.bin and PREFIX.idx")->required();
  app.add_option("--vocab-size", vocab, "token ids are < this")->required()->check(CLI::Range(2, 1 << 30));
  app.add_option("--num-docs", docs, "documents")->check(positive());
  app.add_option("--seed", seed, "random seed");
  int code = 0;
  if (!parse(app, argc, argv, code)) return code;
  // The prefix's folder is created, as preprocess does.
  std::error_code ec;
  const auto parent = std::filesystem::path(prefix).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  IndexedDatasetWriter w(prefix, best_dtype(vocab));
  std::vector<int32_t> ids;
  const uint64_t key = philox_key(seed, "synth-data");
  for (int64_t d = 0; d < docs; ++d) {
    const PhiloxBlock r = philox4x32(key, uint64_t(d));
    const int64_t len = 8 + int64_t(r[0] % 89), start = r[1] % vocab, stride = 1 + r[2] % 7;
    ids.resize(static_cast<size_t>(len));
    for (int64_t i = 0; i < len; ++i) ids[size_t(i)] = int32_t((start + i * stride) % vocab);
    w.add_item(ids.data(), len);
    w.end_document();
  }
  w.finalize();
  const PhiloxBlock r0 = philox4x32(key, 0);
  std::string first;
  for (int64_t i = 0; i < 8; ++i) {  // two appends: GCC 12 misreads "," + string (-Wrestrict)
    if (i) first += ',';
    first += std::to_string((r0[1] % vocab + i * (1 + r0[2] % 7)) % vocab);
  }
  log_info("[synth-data] {} documents -> {}.bin/.idx; document 0 starts {}", docs, prefix, first);
  return 0;
}

}  // namespace cs::cli
