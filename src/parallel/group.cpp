#include "parallel/group.h"

#include <cstring>

namespace cs {

void SingleGroup::all_gather(const float* in, float* out, int64_t count) {
  if (in != out) std::memcpy(out, in, size_t(count) * sizeof(float));
}

void SingleGroup::reduce_scatter_sum(const float* in, float* out, int64_t count) {
  if (in != out) std::memcpy(out, in, size_t(count) * sizeof(float));
}

}  // namespace cs
