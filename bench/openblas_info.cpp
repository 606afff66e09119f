// Prints which kernel (core) OpenBLAS picked and its thread count: make bench reports it.
#include <cstdio>

extern "C" char* openblas_get_corename(void);
extern "C" char* openblas_get_config(void);
extern "C" int openblas_get_num_threads(void);

int main() {
  std::printf("%s (%s, %d threads)\n", openblas_get_corename(), openblas_get_config(),
              openblas_get_num_threads());
  return 0;
}
