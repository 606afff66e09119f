// chuanspeed: one binary, one subcommand per pipeline step (DESIGN.md §1). Every user-facing
// failure ends here as one line on stderr and a non-zero exit (2 usage, 1 otherwise).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cli/commands.h"
#include "core/error.h"
#include "parallel/mpi_group.h"

namespace {
// This process's rank in a launched job (0 otherwise), from the launcher's environment: error
// lines of a multi-rank job come from rank 0 alone when every rank fails alike.
int launched_rank() {
  for (const char* v : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"})
    if (const char* s = std::getenv(v)) return std::atoi(s);
  return 0;
}

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
    "  convert      Hugging Face directory <-> native checkpoint (--dtype, --max-shard-size)\n"
    "  init         write a freshly initialised model as a Hugging Face directory\n"
    "  synth-data   write a synthetic Megatron .bin/.idx dataset (tests and the demo)\n";

// Prints the one error line and returns the exit status. In a multi-rank job a usage error is the
// same on every rank (the same flags): rank 0 says it and every rank finalises; any other error
// may be this rank's alone, so it is said with the rank and the whole job is ended (the other
// ranks would otherwise wait in their next collective).
int fail(const std::string& cmd, const char* what, int code, bool mpi, bool usage) {
  const int rank = launched_rank();
  if (!mpi || usage) {
    if (!mpi || rank == 0) std::fprintf(stderr, "chuanspeed %s: error: %s\n", cmd.c_str(), what);
    if (mpi) cs::mpi_finalize();
    return code;
  }
  std::fprintf(stderr, "chuanspeed %s: error (rank %d): %s\n", cmd.c_str(), rank, what);
  std::fflush(stderr);
  cs::mpi_abort(code);
}
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
  try {
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
  } catch (const cs::Error& e) {
    return fail(cmd, e.what(), e.exit_code(), mpi, dynamic_cast<const cs::UsageError*>(&e) != nullptr);
  } catch (const std::exception& e) {
    return fail(cmd, e.what(), 1, mpi, false);
  }
}
