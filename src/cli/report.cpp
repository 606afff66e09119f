// How a command's failure reaches the user: one line on stderr and the exit status of the
// README's rule (2 usage, 1 data and runtime, 70 an internal error). In a job of several ranks a
// usage error is said once, by rank 0; any other error names its rank and ends the whole job.
#include <cstdio>
#include <cstdlib>

#include "cli/commands.h"
#include "core/error.h"
#include "parallel/mpi_group.h"

namespace cs::cli {

namespace {
// This process's rank in a launched job (0 otherwise), from the launcher's environment: error
// lines of a multi-rank job come from rank 0 alone when every rank fails alike.
int launched_rank() {
  for (const char* v : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"})
    if (const char* s = std::getenv(v)) return std::atoi(s);
  return 0;
}

// Prints the one error line and returns the exit status. A usage error is the same on every rank
// (the same flags): rank 0 says it and every rank finalises; any other error may be this rank's
// alone, so it is said with the rank and the whole job is ended (the other ranks would otherwise
// wait in their next collective).
// KIND: "error" or "internal error".
int fail(const std::string& cmd, const char* kind, const std::string& what, int code, bool mpi, bool usage) {
  const int rank = launched_rank();
  if (!mpi || usage) {
    if (!mpi || rank == 0) std::fprintf(stderr, "chuanspeed %s: %s: %s\n", cmd.c_str(), kind, what.c_str());
    if (mpi) mpi_finalize();
    return code;
  }
  std::fprintf(stderr, "chuanspeed %s: %s (rank %d): %s\n", cmd.c_str(), kind, rank, what.c_str());
  std::fflush(stderr);
  mpi_abort(code);
}
}  // namespace

int run_reporting_errors(const std::string& cmd, const bool& mpi, const std::function<int()>& body) {
  try {
    return body();
  } catch (const UsageError& e) {
    return fail(cmd, "error", e.what(), e.exit_code(), mpi, true);
  } catch (const Error& e) {
    return fail(cmd, "error", e.what(), e.exit_code(), mpi, false);
  } catch (const InternalError& e) {
    // A failed CS_CHECK: a bug, whatever the input was. Said as such, not as bad input.
    return fail(cmd, "internal error", std::string(e.what()) + ". Hint: this is a bug in chuanspeed, not a "
                "problem with the input; please report it with the command line", kInternalErrorExit, mpi, false);
  } catch (const std::exception& e) {
    return fail(cmd, "error", e.what(), 1, mpi, false);
  }
}

}  // namespace cs::cli
