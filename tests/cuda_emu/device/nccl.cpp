// NCCL on the emulated GPU (include/nccl.h), over MPI: each rank's emulated device memory is host
// memory, so the collectives are MPI's on it. What NCCL's contract makes an error is one here:
// a buffer not in device memory (or shorter than the call says), a stream that is not the
// device's, a rank or peer out of range, a group end without a start. A communicator is made as
// NCCL makes it, from a unique id that the creator (its rank 0) passed to the others: here the id
// names the creator's MPI rank, the others send it theirs, and it answers with the list from
// which every member makes the MPI communicator (MPI_Comm_create_group: only the members take
// part). bf16 and f16 sums are of the values widened to f32, rounded once.
#include <mpi.h>

#include <cstring>
#include <vector>

#include "cuda_emu/device/include/nccl.h"

struct ncclComm {
  MPI_Comm mpi = MPI_COMM_NULL;
  int rank = 0, size = 0;
};

namespace {

constexpr uint32_t kMagic = 0x6e63636c;  // "nccl"
constexpr int kTagBase = 0x4e00;          // MpiGroup's traffic is on its own communicators

struct IdBody {
  uint32_t magic;
  int world_rank;  // the creator's
  int serial;      // its count of ids made
};

struct Pending {
  bool send;
  void* buf;
  size_t bytes;
  int peer;
  ncclComm_t comm;
};
int g_group_depth = 0;
std::vector<Pending> g_pending;

size_t type_size(ncclDataType_t t) {
  switch (t) {
    case ncclInt8: case ncclUint8: return 1;
    case ncclFloat16: case ncclBfloat16: return 2;
    case ncclInt32: case ncclUint32: case ncclFloat32: return 4;
    default: return 8;
  }
}

bool usable(ncclComm_t comm, cudaStream_t stream) {
  return comm && comm->mpi != MPI_COMM_NULL && emu::gpu::live_stream(stream) && emu::gpu::sticky() == cudaSuccess;
}

bool on_device(const void* p, size_t bytes) { return bytes == 0 || emu::gpu::device_range(p, bytes); }

// The values of n elements of a float type as f32, and back (rounded to nearest even).
std::vector<float> widen(const void* p, size_t n, ncclDataType_t t) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = t == ncclBfloat16 ? static_cast<const bf16*>(p)[i].f() : static_cast<const f16*>(p)[i].f();
  return v;
}
void narrow(const std::vector<float>& v, void* p, ncclDataType_t t) {
  for (size_t i = 0; i < v.size(); ++i) {
    if (t == ncclBfloat16) static_cast<bf16*>(p)[i] = bf16(v[i]);
    else static_cast<f16*>(p)[i] = f16(v[i]);
  }
}
bool half(ncclDataType_t t) { return t == ncclBfloat16 || t == ncclFloat16; }
MPI_Datatype mpi_float(ncclDataType_t t) { return t == ncclFloat64 ? MPI_DOUBLE : MPI_FLOAT; }
bool summable(ncclDataType_t t) { return t == ncclFloat32 || t == ncclFloat64 || half(t); }

ncclResult_t mpi(int rc) { return rc == MPI_SUCCESS ? ncclSuccess : ncclSystemError; }

}  // namespace

const char* ncclGetErrorString(ncclResult_t r) {
  switch (r) {
    case ncclSuccess: return "no error";
    case ncclUnhandledCudaError: return "unhandled cuda error";
    case ncclSystemError: return "unhandled system error";
    case ncclInternalError: return "internal error";
    case ncclInvalidArgument: return "invalid argument";
    case ncclInvalidUsage: return "invalid usage";
  }
  return "unknown result";
}

ncclResult_t ncclGetUniqueId(ncclUniqueId* id) {
  static int serial = 0;
  int world = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &world);
  std::memset(id, 0, sizeof *id);
  const IdBody body{kMagic, world, serial++ % 4096};
  std::memcpy(id->internal, &body, sizeof body);
  return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank) {
  IdBody body;
  std::memcpy(&body, id.internal, sizeof body);
  if (body.magic != kMagic || nranks < 1 || rank < 0 || rank >= nranks) return ncclInvalidArgument;
  int world = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &world);
  if ((rank == 0) != (world == body.world_rank)) return ncclInvalidUsage;  // rank 0 made the id
  const int tag = kTagBase + body.serial;
  std::vector<int> members(size_t(nranks), -1);
  members[0] = body.world_rank;
  if (rank == 0) {
    for (int i = 1; i < nranks; ++i) {
      int msg[2];
      MPI_Recv(msg, 2, MPI_INT, MPI_ANY_SOURCE, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      if (msg[0] < 1 || msg[0] >= nranks || members[size_t(msg[0])] != -1) return ncclInvalidUsage;
      members[size_t(msg[0])] = msg[1];
    }
    for (int i = 1; i < nranks; ++i) MPI_Send(members.data(), nranks, MPI_INT, members[size_t(i)], tag, MPI_COMM_WORLD);
  } else {
    const int msg[2] = {rank, world};
    MPI_Send(msg, 2, MPI_INT, body.world_rank, tag, MPI_COMM_WORLD);
    MPI_Recv(members.data(), nranks, MPI_INT, body.world_rank, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  }
  MPI_Group world_group, group;
  MPI_Comm_group(MPI_COMM_WORLD, &world_group);
  MPI_Group_incl(world_group, nranks, members.data(), &group);
  auto* c = new ncclComm;
  const int rc = MPI_Comm_create_group(MPI_COMM_WORLD, group, tag, &c->mpi);
  MPI_Group_free(&group);
  MPI_Group_free(&world_group);
  if (rc != MPI_SUCCESS) {
    delete c;
    return ncclSystemError;
  }
  MPI_Comm_rank(c->mpi, &c->rank);
  MPI_Comm_size(c->mpi, &c->size);
  *comm = c;
  return c->rank == rank && c->size == nranks ? ncclSuccess : ncclInternalError;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  if (!comm) return ncclInvalidArgument;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && comm->mpi != MPI_COMM_NULL) MPI_Comm_free(&comm->mpi);
  delete comm;
  return ncclSuccess;
}

ncclResult_t ncclAllReduce(const void* send, void* recv, size_t count, ncclDataType_t type, ncclRedOp_t op,
                           ncclComm_t comm, cudaStream_t stream) {
  const size_t bytes = count * type_size(type);
  if (!usable(comm, stream) || op != ncclSum || !summable(type) || !on_device(send, bytes) || !on_device(recv, bytes))
    return ncclInvalidArgument;
  if (half(type)) {
    std::vector<float> v = widen(send, count, type);
    const ncclResult_t r = mpi(MPI_Allreduce(MPI_IN_PLACE, v.data(), int(count), MPI_FLOAT, MPI_SUM, comm->mpi));
    narrow(v, recv, type);
    return r;
  }
  return mpi(MPI_Allreduce(send == recv ? MPI_IN_PLACE : send, recv, int(count), mpi_float(type), MPI_SUM, comm->mpi));
}

ncclResult_t ncclAllGather(const void* send, void* recv, size_t send_count, ncclDataType_t type, ncclComm_t comm,
                           cudaStream_t stream) {
  if (!usable(comm, stream)) return ncclInvalidArgument;
  const size_t bytes = send_count * type_size(type);
  if (!on_device(send, bytes) || !on_device(recv, bytes * size_t(comm->size))) return ncclInvalidArgument;
  // In place when send is this rank's block of recv, as NCCL allows.
  const bool in_place = send == static_cast<char*>(recv) + bytes * size_t(comm->rank);
  return mpi(MPI_Allgather(in_place ? MPI_IN_PLACE : send, int(bytes), MPI_BYTE, recv, int(bytes), MPI_BYTE, comm->mpi));
}

ncclResult_t ncclReduceScatter(const void* send, void* recv, size_t recv_count, ncclDataType_t type, ncclRedOp_t op,
                               ncclComm_t comm, cudaStream_t stream) {
  if (!usable(comm, stream) || op != ncclSum || !summable(type)) return ncclInvalidArgument;
  const size_t bytes = recv_count * type_size(type);
  if (!on_device(send, bytes * size_t(comm->size)) || !on_device(recv, bytes)) return ncclInvalidArgument;
  if (half(type)) {
    const std::vector<float> in = widen(send, recv_count * size_t(comm->size), type);
    std::vector<float> out(recv_count);
    const ncclResult_t r =
        mpi(MPI_Reduce_scatter_block(in.data(), out.data(), int(recv_count), MPI_FLOAT, MPI_SUM, comm->mpi));
    narrow(out, recv, type);
    return r;
  }
  std::vector<char> in(static_cast<const char*>(send), static_cast<const char*>(send) + bytes * size_t(comm->size));
  return mpi(MPI_Reduce_scatter_block(in.data(), recv, int(recv_count), mpi_float(type), MPI_SUM, comm->mpi));
}

ncclResult_t ncclBroadcast(const void* send, void* recv, size_t count, ncclDataType_t type, int root, ncclComm_t comm,
                           cudaStream_t stream) {
  if (!usable(comm, stream) || root < 0 || root >= comm->size) return ncclInvalidArgument;
  const size_t bytes = count * type_size(type);
  if ((comm->rank == root && !on_device(send, bytes)) || !on_device(recv, bytes)) return ncclInvalidArgument;
  if (comm->rank == root && send != recv) std::memmove(recv, send, bytes);
  return mpi(MPI_Bcast(recv, int(bytes), MPI_BYTE, root, comm->mpi));
}

namespace {
ncclResult_t point_to_point(bool is_send, void* buf, size_t count, ncclDataType_t type, int peer, ncclComm_t comm,
                            cudaStream_t stream) {
  if (!usable(comm, stream) || peer < 0 || peer >= comm->size || peer == comm->rank) return ncclInvalidArgument;
  const size_t bytes = count * type_size(type);
  if (!on_device(buf, bytes)) return ncclInvalidArgument;
  if (g_group_depth > 0) {  // both directions of a group progress together, at its end
    g_pending.push_back({is_send, buf, bytes, peer, comm});
    return ncclSuccess;
  }
  return is_send ? mpi(MPI_Send(buf, int(bytes), MPI_BYTE, peer, 0, comm->mpi))
                 : mpi(MPI_Recv(buf, int(bytes), MPI_BYTE, peer, 0, comm->mpi, MPI_STATUS_IGNORE));
}
}  // namespace

ncclResult_t ncclSend(const void* send, size_t count, ncclDataType_t type, int peer, ncclComm_t comm,
                      cudaStream_t stream) {
  return point_to_point(true, const_cast<void*>(send), count, type, peer, comm, stream);
}
ncclResult_t ncclRecv(void* recv, size_t count, ncclDataType_t type, int peer, ncclComm_t comm, cudaStream_t stream) {
  return point_to_point(false, recv, count, type, peer, comm, stream);
}

ncclResult_t ncclGroupStart() {
  ++g_group_depth;
  return ncclSuccess;
}
ncclResult_t ncclGroupEnd() {
  if (g_group_depth == 0) return ncclInvalidUsage;
  if (--g_group_depth > 0) return ncclSuccess;
  std::vector<MPI_Request> reqs(g_pending.size());
  for (size_t i = 0; i < g_pending.size(); ++i) {
    const Pending& p = g_pending[i];
    const int rc = p.send ? MPI_Isend(p.buf, int(p.bytes), MPI_BYTE, p.peer, 0, p.comm->mpi, &reqs[i])
                          : MPI_Irecv(p.buf, int(p.bytes), MPI_BYTE, p.peer, 0, p.comm->mpi, &reqs[i]);
    if (rc != MPI_SUCCESS) return ncclSystemError;
  }
  g_pending.clear();
  return mpi(MPI_Waitall(int(reqs.size()), reqs.data(), MPI_STATUSES_IGNORE));
}
