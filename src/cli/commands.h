// The subcommands of the chuanspeed binary; each parses its own flags (CLI11) and returns the
// process exit status. User errors are thrown as cs::Error and reported by main.
#pragma once
#include <functional>
#include <string>

namespace cs::cli {

// The exit status of an internal error (a failed CS_CHECK: a bug), sysexits.h's EX_SOFTWARE.
inline constexpr int kInternalErrorExit = 70;

// Runs BODY (a command) and returns its exit status; what it throws becomes one line on stderr,
// "chuanspeed CMD: error: ..." or "chuanspeed CMD: internal error: ...", and the exit status of
// the README's rule: a UsageError 2, another cs::Error its own (1), a failed CS_CHECK 70, any
// other exception 1. MPI (read when BODY throws: BODY may start MPI itself): a usage error is said
// by rank 0 and every rank finalises; any other error is said with its rank and aborts the job.
int run_reporting_errors(const std::string& cmd, const bool& mpi, const std::function<int()>& body);

int eval_main(int argc, char** argv);
int init_main(int argc, char** argv);
int synth_data_main(int argc, char** argv);
int train_main(int argc, char** argv);
int convert_main(int argc, char** argv);
int compare_main(int argc, char** argv);
int pulse_main(int argc, char** argv);
int generate_main(int argc, char** argv);
int preprocess_main(int argc, char** argv);
int plan_main(int argc, char** argv);

}  // namespace cs::cli
