// How many OpenMP threads a process computes with (--threads): the flag when given, else
// OMP_NUM_THREADS when set, else the cores this process may use (its CPU affinity) divided by the
// ranks sharing its node (mpirun / srun say how many), at least 1. Without the division every rank
// of `mpirun -np 8` on an 8-core node would start 8 threads: 64 threads on 8 cores, where every
// parallel region waits at its barrier for a thread the kernel has descheduled (measured here: a
// 2-thread run 5x slower than a 1-thread one when other work shares the 2 cores).
// OpenBLAS (Debian's OpenMP build) runs in the same libgomp pool, so one number governs both.
#pragma once
#include <optional>

namespace cs::cpu {

// The choice above, as a pure function (tests): requested (the flag), env (OMP_NUM_THREADS, parsed),
// cores (the affinity's count), local_ranks (>= 1).
int choose_threads(std::optional<int> requested, std::optional<int> env, int cores, int local_ranks);

// The same for this process: reads OMP_NUM_THREADS, sched_getaffinity and the launcher's local rank
// count (OMPI_COMM_WORLD_LOCAL_SIZE, MPI_LOCALNRANKS, SLURM_NTASKS_PER_NODE), sets OpenMP's thread
// count, and returns it.
int apply_threads(std::optional<int> requested);

}  // namespace cs::cpu
