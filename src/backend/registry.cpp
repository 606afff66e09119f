// make_backend: --device NAME -> a backend. The CPU backend is always there; CUDA is linked in
// by the CUDA build (backend/cuda), otherwise its stub (cuda/no_cuda.cpp) says the build has none.
#include <fmt/core.h>

#include "backend/backend.h"

namespace cs {

std::unique_ptr<Backend> make_cpu_backend();
std::unique_ptr<Backend> make_cuda_backend();

std::unique_ptr<Backend> make_backend(const std::string& name) {
  if (name == "cpu") return make_cpu_backend();
  if (name == "cuda") return make_cuda_backend();
  throw UsageError(fmt::format("--device {}: expected cpu or cuda", name));
}

}  // namespace cs
