// OpenMP thread queries that compile to 1 / 0 without OpenMP.
#pragma once
#ifdef _OPENMP
#include <omp.h>
#endif

namespace cs::cpu {
inline int omp_threads() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}
inline int omp_thread() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}
}  // namespace cs::cpu
