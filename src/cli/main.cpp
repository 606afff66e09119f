// chuanspeed: one binary, one subcommand per pipeline step (DESIGN.md §1). Every failure ends
// here as one line on stderr and a non-zero exit (2 usage, 1 otherwise, 70 an internal error:
// run_reporting_errors in cli/report.cpp).
#include <cstdio>
#include <cstring>
#include <string>

#include "cli/commands.h"
#include "parallel/mpi_group.h"

namespace {
const char* kUsage =
    "usage: chuanspeed <command> [flags]   (chuanspeed <command> --help for its flags)\n"
    "commands:\n"
    "  preprocess   tokenize a corpus (parquet, JSON, JSONL) into a Megatron .bin/.idx dataset\n"
    "  plan         memory per rank, FLOPs and step time of a model + layout, before launching\n"
    "  train        pretrain or fine-tune with Megatron's flags (one process, or ranks under mpirun/srun)\n"
    "  eval         score each document of a Megatron dataset with a model (loss, perplexity)\n"
    "  compare      compare two runs' loss curves (metrics.jsonl or Megatron logs), plot\n"
    "  generate     sample text from a trained model (KV cache; greedy or top-k / top-p)\n"
    "  pulse        is a run running or scheduled? restart it from its last checkpoint if not\n"
    "  convert      Hugging Face directory <-> native checkpoint, Megatron-LM checkpoint -> either\n"
    "  init         write a freshly initialised model as a Hugging Face directory\n"
    "  synth-data   write a synthetic Megatron .bin/.idx dataset (tests and the demo)\n";

}  // namespace

int main(int argc, char** argv) {
  // Line-buffered even when redirected: stdout's lines (log, validation, saves) stay in order with
  // stderr's (notes, the exit line) in one file.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  if (argc >= 2 && !std::strcmp(argv[1], "--version")) {
    std::printf("chuanspeed %s\n", CS_VERSION);
    return 0;
  }
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string cmd = argv[1];
  bool mpi = false;
  return cs::cli::run_reporting_errors(cmd, mpi, [&]() -> int {
    // train runs as one rank of a job under mpirun / srun: MPI from here to the end of main.
    mpi = cmd == "train" && cs::mpi_init_if_launched(&argc, &argv);
    if (mpi) {
      const int rc = cs::cli::train_main(argc - 1, argv + 1);
      cs::mpi_finalize();
      return rc;
    }
    if (cmd == "preprocess") return cs::cli::preprocess_main(argc - 1, argv + 1);
    if (cmd == "plan") return cs::cli::plan_main(argc - 1, argv + 1);
    if (cmd == "train") return cs::cli::train_main(argc - 1, argv + 1);
    if (cmd == "eval") return cs::cli::eval_main(argc - 1, argv + 1);
    if (cmd == "generate") return cs::cli::generate_main(argc - 1, argv + 1);
    if (cmd == "pulse") return cs::cli::pulse_main(argc - 1, argv + 1);
    if (cmd == "compare") return cs::cli::compare_main(argc - 1, argv + 1);
    if (cmd == "convert") return cs::cli::convert_main(argc - 1, argv + 1);
    if (cmd == "init") return cs::cli::init_main(argc - 1, argv + 1);
    if (cmd == "synth-data") return cs::cli::synth_data_main(argc - 1, argv + 1);
    std::fprintf(stderr, "chuanspeed: error: unknown command '%s'. Hint: chuanspeed --help lists them\n",
                 cmd.c_str());
    return 2;
  });
}
