// A build without NCCL: every backend computes through the group it is given (a CUDA backend's
// tensors then go through MpiGroup's host staging).
#include "parallel/nccl_group.h"

namespace cs {

std::unique_ptr<Group> group_for_device(std::unique_ptr<Group> world, Backend&) { return world; }

}  // namespace cs
