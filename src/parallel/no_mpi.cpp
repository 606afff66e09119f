// The MPI entry points in a build without MPI (CS_WITH_MPI off): a process started by an MPI
// launcher is told in one line that this build cannot join the job; nothing else can be reached
// (no MpiGroup can be made). Not a fallback: such a build runs single-process (SingleGroup).
#include <cstdio>
#include <cstdlib>

#include <fmt/core.h>

#include "parallel/mpi_group.h"

namespace cs {

struct MpiGroup::Comm {};

namespace {
[[noreturn]] void no_mpi(const char* what) {
  throw Error(fmt::format("[mpi] {}: this build has no MPI. Hint: install libopenmpi-dev and reconfigure with "
                          "-DCS_WITH_MPI=ON",
                          what));
}
}  // namespace

bool mpi_init_if_launched(int*, char***) {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
    if (std::getenv(var))
      no_mpi(fmt::format("this process was started by an MPI launcher ({} is set)", var).c_str());
  return false;
}
bool mpi_active() { return false; }
void mpi_finalize() {}
void mpi_abort(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(code);
}

MpiGroup::MpiGroup(std::unique_ptr<Comm> comm, std::string name, double timeout_s)
    : comm_(std::move(comm)), name_(std::move(name)), timeout_s_(timeout_s) {}
MpiGroup::~MpiGroup() = default;
std::unique_ptr<MpiGroup> MpiGroup::world(double) { no_mpi("MpiGroup::world"); }
void MpiGroup::all_reduce_sum(Ctx&, const Tensor&) { no_mpi("all_reduce_sum"); }
void MpiGroup::all_gather(Ctx&, const Tensor&, const Tensor&) { no_mpi("all_gather"); }
void MpiGroup::reduce_scatter_sum(Ctx&, const Tensor&, const Tensor&) { no_mpi("reduce_scatter_sum"); }
void MpiGroup::broadcast(Ctx&, const Tensor&, int) { no_mpi("broadcast"); }
void MpiGroup::send(Ctx&, const Tensor&, int) { no_mpi("send"); }
void MpiGroup::recv(Ctx&, const Tensor&, int) { no_mpi("recv"); }
int64_t mpi_bytes_sent() { return 0; }

void MpiGroup::send_recv(Ctx&, const Tensor&, int, const Tensor&, int) { no_mpi("send_recv"); }
void MpiGroup::check_peer(const char*, int) const { no_mpi("send"); }
void MpiGroup::barrier(Ctx&) { no_mpi("barrier"); }
std::unique_ptr<Group> MpiGroup::split(int, int) { no_mpi("split"); }
std::unique_ptr<MpiGroup> MpiGroup::split(int, int, std::string) { no_mpi("split"); }
void MpiGroup::set_max_piece(int64_t n) { max_piece_ = n; }

}  // namespace cs
