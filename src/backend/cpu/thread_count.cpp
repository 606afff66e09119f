#include "backend/cpu/thread_count.h"

#include <sched.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace cs::cpu {

namespace {
// A positive integer environment variable, or nothing (unset, empty, or not a positive number:
// such a value is OpenMP's or the launcher's business, not a reason to fail here).
std::optional<int> env_int(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  if (end == v || n < 1 || n > 1 << 20) return std::nullopt;
  return int(n);
}
}  // namespace

int choose_threads(std::optional<int> requested, std::optional<int> env, int cores, int local_ranks) {
  if (requested) return std::max(1, *requested);
  if (env) return *env;
  return std::max(1, cores / std::max(1, local_ranks));
}

int apply_threads(std::optional<int> requested) {
  cpu_set_t set;
  int cores = 1;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) cores = std::max(1, CPU_COUNT(&set));
  int local = 1;
  for (const char* v : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"})
    if (const auto n = env_int(v)) {
      local = *n;
      break;
    }
  const int n = choose_threads(requested, env_int("OMP_NUM_THREADS"), cores, local);
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
  return n;
}

}  // namespace cs::cpu
