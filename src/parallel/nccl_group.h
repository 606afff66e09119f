// NcclGroup: the Group interface over an NCCL communicator, the GPU path of every parallel layout
// (TP, SP, PP, DP, ZeRO): the collectives run on the context's CUDA stream, ordered after the
// kernels queued before them, and the host never sees the data. It is bootstrapped over the
// process's MPI group (rank 0 makes the NCCL unique id and broadcasts it through MPI) and keeps
// that group for split() and barrier(). One GPU per rank (NCCL refuses two ranks on one GPU).
// Sums are NCCL's (its ring / tree order, not MpiGroup's rank-order fold): every rank gets the
// same bits, but not the MPI group's bits. No deadline: a stuck NCCL call waits.
#pragma once
#include <memory>

#include "parallel/group.h"

namespace cs {

// The group every rank of this job should compute through on `backend`: on a CUDA backend in a
// build with NCCL, an NCCL group over `world`'s ranks (a collective over them); otherwise `world`.
std::unique_ptr<Group> group_for_device(std::unique_ptr<Group> world, Backend& backend);

}  // namespace cs
