// The CUDA backend compiled out: asking for it is one usage line, never a crash.
#include "backend/backend.h"

namespace cs {

std::unique_ptr<Backend> make_cuda_backend() {
  throw UsageError("--device cuda: this build of chuanspeed has no CUDA backend; expected --device cpu. "
                   "Hint: build with CUDA (cmake -DCS_WITH_CUDA=ON, needs nvcc) to train on a GPU");
}

}  // namespace cs

namespace cs {
int cuda_device_count() { return 0; }
}  // namespace cs
