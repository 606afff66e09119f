// --threads and its default (backend/cpu/thread_count.h): the flag wins, then OMP_NUM_THREADS, else
// the cores this process may use shared among the ranks on its node, never below 1; apply_threads
// sets OpenMP's team size to what it returns.
#include <gtest/gtest.h>

#include <cstdlib>

#include "backend/cpu/thread_count.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace cs {
namespace {

TEST(ThreadCount, FlagThenEnvironmentThenCoresPerLocalRank) {
  EXPECT_EQ(cpu::choose_threads(3, 5, 8, 2), 3);
  EXPECT_EQ(cpu::choose_threads(std::nullopt, 5, 8, 2), 5);
  EXPECT_EQ(cpu::choose_threads(std::nullopt, std::nullopt, 8, 1), 8);
  EXPECT_EQ(cpu::choose_threads(std::nullopt, std::nullopt, 8, 2), 4);   // mpirun -np 2 on 8 cores
  EXPECT_EQ(cpu::choose_threads(std::nullopt, std::nullopt, 8, 3), 2);   // rounded down
  EXPECT_EQ(cpu::choose_threads(std::nullopt, std::nullopt, 2, 4), 1);   // oversubscribed: one each
  EXPECT_EQ(cpu::choose_threads(std::nullopt, std::nullopt, 2, 0), 2);   // no launcher figure
}

TEST(ThreadCount, ApplySetsOpenMpsTeamSize) {
  const char* saved = std::getenv("OMP_NUM_THREADS");
  const std::string keep = saved ? saved : "";
  unsetenv("OMP_NUM_THREADS");
  setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "64", 1);  // more ranks than any core count here
  EXPECT_EQ(cpu::apply_threads(std::nullopt), 1);
#ifdef _OPENMP
  EXPECT_EQ(omp_get_max_threads(), 1);
#endif
  EXPECT_EQ(cpu::apply_threads(2), 2);
#ifdef _OPENMP
  EXPECT_EQ(omp_get_max_threads(), 2);
#endif
  unsetenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  if (saved) setenv("OMP_NUM_THREADS", keep.c_str(), 1);
}

}  // namespace
}  // namespace cs
