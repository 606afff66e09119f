// chuanspeed eval --load DIR|CKPT --data-path PREFIX --seq-length N [--micro-batch-size B]
//                 [--output F.jsonl]
// Scores each document alone, in order; one JSON line per document, then a summary on stdout.
#include <fmt/core.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "backend/cpu/thread_count.h"
#include "cli/commands.h"
#include "cli/parse.h"
#include "core/log.h"
#include "data/sft_dataset.h"
#include "train/evaluate.h"
#include "train/checkpointing.h"
#include "train/hf_model.h"

namespace cs::cli {

int eval_main(int argc, char** argv) {
  CLI::App app("Score each document of a Megatron dataset with a model", "eval");
  std::string load, data_path, output;
  int64_t seq_length = 0, micro_batch = 1;
  app.add_option("--load", load, "a Hugging Face model directory, a native checkpoint or a Megatron-LM checkpoint")
      ->required();
  app.add_option("--data-path", data_path, "dataset prefix (PREFIX.bin / PREFIX.idx)")->required();
  app.add_option("--seq-length", seq_length, "tokens scored per document (N)")->required()
      ->check(positive());
  app.add_option("--micro-batch-size", micro_batch, "documents per forward pass")->check(positive());
  app.add_option("--output", output, "per-document JSON lines (default: stdout)");
  bool instruction = false;
  app.add_flag("--is-instruction-dataset", instruction,
               "--data-path is PREFIX_text_document of an instruction dataset: score the response tokens only "
               "(its loss mask)");
  std::string device = "cpu";
  add_device_option(app, device);
  std::optional<int> threads;
  add_threads_option(app, threads);
  int code = 0;
  if (!parse(app, argc, argv, code)) return code;
  cpu::apply_threads(threads);

  auto backend = make_backend(device);
  auto ctx = backend->make_context();
  IndexedDataset data(data_path);  // validate the dataset before loading a model
  std::shared_ptr<const IndexedDataset> mask;  // --is-instruction-dataset: score what it marks trained
  if (instruction) mask = open_loss_mask(data);
  SingleGroup tp("tp");
  MemoryRequest req;  // refused before anything is allocated when it cannot fit
  req.batch_source = fmt::format("--micro-batch-size {} and --seq-length {}", micro_batch, seq_length);
  req.batch_hint = "a smaller --micro-batch-size or --seq-length";
  auto model = load_model_weights(load, *ctx, tp, micro_batch, seq_length, req);
  log_info("[eval] {}: {}", load, model->config().summary());
  log_info("[eval] {}: {} documents", data_path, data.num_docs());

  std::FILE* out = stdout;
  const std::string tmp = output.empty() ? "" : output + ".tmp";
  if (!output.empty() && !(out = std::fopen(tmp.c_str(), "w")))
    throw Error(fmt::format("[eval] cannot write --output {}. Hint: check the directory exists", output));
  EvalSummary s = evaluate_documents(*model, data, seq_length, micro_batch, [&](const DocScore& d) {
    nlohmann::ordered_json j = {{"doc", d.doc}, {"tokens", d.tokens}, {"loss", d.loss}};
    std::fprintf(out, "%s\n", j.dump().c_str());
  }, mask.get());
  if (out != stdout) {
    const bool ok = std::fflush(out) == 0 && std::fclose(out) == 0;
    if (!ok) throw Error(fmt::format("[eval] writing {} failed (disk full?)", tmp));
    std::filesystem::rename(tmp, output);
  }
  const double mean = s.mean_loss();
  std::printf("eval summary: documents %lld | tokens %lld | mean loss %.6f | perplexity %.4f | "
              "tokens/s %.1f\n",
              (long long)s.docs, (long long)s.tokens, mean, std::exp(mean),
              s.seconds > 0 ? double(s.tokens) / s.seconds : 0.0);
  return 0;
}

}  // namespace cs::cli
