// MpiGroup: the Group interface over an MPI communicator, for processes started by mpirun/srun.
// It is not CUDA-aware and not a GPU transport: device tensors are staged through host memory
// (NCCL is the GPU path). Invariants: sums are folded in rank order, so every rank gets the same
// bits run after run; no call waits past the group's deadline: past it the job is aborted with
// one line naming the operation, the group and the rank, never left hanging. This header needs no
// mpi.h; a build without MPI (CS_WITH_MPI off) links stubs that say so in one line.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "parallel/group.h"

namespace cs {

// Initialises MPI (thread level FUNNELED: only the main thread calls MPI) when this process was
// started by an MPI launcher (OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK in the environment) and
// returns true; returns false, doing nothing, otherwise. Call it first in main, before any thread
// starts. In a build without MPI a launched process gets a cs::Error saying so.
bool mpi_init_if_launched(int* argc, char*** argv);
// Whether MPI is initialised and not yet finalised.
bool mpi_active();
// Finalises MPI if it is active (a collective: every rank must reach it; destroy every MpiGroup
// first). A no-op otherwise.
void mpi_finalize();
// Ends the whole job with `code` from one rank (MPI_Abort on the world): what a rank must do when
// it fails alone, since a rank that returns instead leaves the others waiting in a collective.
// Exits the process with `code` when MPI is not active.
[[noreturn]] void mpi_abort(int code);
// Payload bytes this process has sent through MpiGroup so far (each collective as its algorithm
// sends it; 0 without MPI).
int64_t mpi_bytes_sent();

// A Group over an MPI communicator (its own duplicate, so its traffic never meets another
// group's). Tensors may be on any backend: host memory (Backend::is_host) is used in place, other
// memory is synchronised, downloaded, communicated and uploaded.
//
// Reduction order (documented, relied on by the determinism tests and by DP vs. ZeRO):
//   all_reduce_sum:     element i = ((x_0[i] + x_1[i]) + x_2[i]) + ... + x_{P-1}[i], x_r being
//                       rank r's tensor, added in the tensor's dtype (bf16/f16 are added in f32
//                       and rounded once at the end). Each element is folded by one rank (the
//                       tensor is cut into P near-equal chunks, chunk r folded by rank r after an
//                       all-to-all, then all-gathered), so every rank gets the same bits.
//   reduce_scatter_sum: the same fold, so out equals this rank's slice of all_reduce_sum(in) bit
//                       for bit.
// Deadline: every wait (one MPI request; a tensor larger than the piece size is several) polls
// its nonblocking request and, past timeout_s seconds, prints one line
// "[mpi] <op> on group <name> (rank r of n, world rank w) did not complete within T s: ..." to
// stderr and calls MPI_Abort on the world, so every rank exits non-zero.
// MPI errors (the communicators return them instead of aborting) are cs::Errors naming the call,
// MPI's error string, file:line and the rank.
class MpiGroup final : public Group {
 public:
  // The group of every process of the job (a duplicate of MPI_COMM_WORLD), named "world", whose
  // waits give up after timeout_s seconds (Megatron's --distributed-timeout-minutes * 60). MPI
  // must be initialised (mpi_init_if_launched). May be called more than once (each is a new
  // communicator; a collective over the world).
  static std::unique_ptr<MpiGroup> world(double timeout_s);
  ~MpiGroup() override;
  MpiGroup(const MpiGroup&) = delete;
  MpiGroup& operator=(const MpiGroup&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return name_; }
  // This process's rank in MPI_COMM_WORLD (for messages).
  int world_rank() const { return world_rank_; }
  // Seconds a wait may last before the job is aborted.
  double timeout_s() const { return timeout_s_; }

  // The collectives of Group, with these MPI specifics. Sums take F32, F64, BF16 or F16. out may be
  // this rank's chunk of in (reduce_scatter_sum) and in may be this rank's chunk of out
  // (all_gather: the in-place forms ZeRO uses); no other overlap.
  void all_reduce_sum(Ctx& c, const Tensor& t) override;
  void all_gather(Ctx& c, const Tensor& in, const Tensor& out) override;
  void reduce_scatter_sum(Ctx& c, const Tensor& in, const Tensor& out) override;
  void broadcast(Ctx& c, const Tensor& t, int root) override;
  // Messages between two ranks arrive in the order sent (MPI's non-overtaking rule, one tag). A
  // send returns when its buffer may be reused, which for a large message means when the peer's
  // recv has started: two ranks that both send first wait for each other until the deadline
  // (exchange with send_recv instead).
  // A recv whose tensor's byte size differs from the message's is a cs::Error.
  void send(Ctx& c, const Tensor& t, int peer) override;
  void recv(Ctx& c, const Tensor& t, int peer) override;
  // Group::send_recv; send_peer and recv_peer may be equal.
  void send_recv(Ctx& c, const Tensor& to_send, int send_peer, const Tensor& to_recv, int recv_peer) override;
  void barrier(Ctx& c) override;
  // MPI_Comm_split: the ranks passing the same colour (>= 0) form a group ordered by (key, rank),
  // named "<this name>/<colour>", with this group's deadline. Every rank of this group must call it.
  std::unique_ptr<Group> split(int colour, int key) override;
  // The same, named `name`.
  std::unique_ptr<MpiGroup> split(int colour, int key, std::string name);

  // The most elements (or bytes, for gathers, broadcasts and messages) one MPI call moves; larger
  // tensors go in pieces of this size (MPI counts are int). Lowered by tests to exercise that path.
  void set_max_piece(int64_t n);

  struct Comm;  // the MPI communicator (defined in mpi_group.cpp, which alone includes mpi.h)

 private:
  MpiGroup(std::unique_ptr<Comm> comm, std::string name, double timeout_s);
  // A cs::Error unless peer is another rank of this group.
  void check_peer(const char* op, int peer) const;
  std::unique_ptr<Comm> comm_;
  std::string name_;
  double timeout_s_;
  int rank_ = 0, size_ = 1, world_rank_ = 0;
  int64_t max_piece_ = int64_t(1) << 28;
  // The received rows a sum folds, kept between calls: data parallelism sums every layer's
  // gradients each step, and a buffer per call would be an allocation per layer per step.
  std::vector<char> rows_;
};

}  // namespace cs
