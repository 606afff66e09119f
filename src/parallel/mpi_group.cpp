// MpiGroup over MPI's nonblocking calls: each collective is one or more MPI_I* requests, each
// polled under the group's deadline. Not an MPI_Allreduce wrapper: MPI_SUM's order is unspecified,
// so sums are an all-to-all of chunks, a fold in rank order on the chunk's owner, and an
// all-gather (see mpi_group.h for the order). Invariant: every rank of a group issues the same
// MPI calls with the same counts in the same order (pieces are cut from sizes all ranks share).
#include "parallel/mpi_group.h"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <type_traits>
#include <vector>

#include <fmt/core.h>

#include "backend/host_copy.h"
#include "core/half.h"

namespace cs {

struct MpiGroup::Comm {
  MPI_Comm handle = MPI_COMM_NULL;
};

namespace {

// Messages of send/recv use this tag; the collectives are MPI's own and never match it.
constexpr int kTagP2P = 17;

int world_rank_now() {
  int r = -1;
  if (mpi_active()) MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

std::string mpi_error_string(int rc) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, buf, &len) != MPI_SUCCESS) return fmt::format("MPI error {}", rc);
  return std::string(buf, size_t(len));
}

// Where a failure happened, for the one-line messages.
struct Where {
  const std::string& group;
  int rank, size;
  std::string str() const {
    return fmt::format("group {} (rank {} of {}, world rank {})", group, rank, size, world_rank_now());
  }
};

void check_mpi(int rc, const char* call, const char* file, int line, const Where& w) {
  if (rc == MPI_SUCCESS) return;
  throw Error(fmt::format("[mpi] {} failed: {} ({}:{}; {})", call, mpi_error_string(rc), file, line, w.str()));
}

#define CS_MPI_CHECK(call, where) check_mpi((call), #call, __FILE__, __LINE__, (where))

// Polls the n requests until every one has completed; past timeout_s prints one line and aborts
// the whole job. rcs[i] is MPI_Test's code for request i (the caller names a failure); statuses,
// when given, are filled.
void wait_all_or_abort(MPI_Request* reqs, MPI_Status* statuses, int* rcs, int n, const char* op, const Where& w,
                       double timeout_s) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  const auto deadline = start + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(timeout_s));
  for (;;) {
    int pending = 0;
    for (int i = 0; i < n; ++i) {
      if (reqs[i] == MPI_REQUEST_NULL) continue;
      int done = 0;
      rcs[i] = MPI_Test(&reqs[i], &done, statuses ? &statuses[i] : MPI_STATUS_IGNORE);
      if (rcs[i] != MPI_SUCCESS) reqs[i] = MPI_REQUEST_NULL;  // failed: no longer ours to wait on
      else if (!done) ++pending;
    }
    if (pending == 0) return;
    const auto now = clock::now();
    if (now >= deadline) {
      std::fprintf(stderr,
                   "[mpi] %s on %s did not complete within %g s: a rank died or stopped. Hint: the "
                   "first error in the other ranks' output names the cause; if a step legitimately "
                   "takes this long (a slow first step, a large checkpoint), raise "
                   "--distributed-timeout-minutes.\n",
                   op, w.str().c_str(), timeout_s);
      std::fflush(stderr);
      MPI_Abort(MPI_COMM_WORLD, 1);
      std::_Exit(1);
    }
    // MPI progresses only inside MPI_Test: spin (yielding the core) while a transfer is likely
    // under way, then sleep briefly so a long wait for a slow rank does not burn a core.
    if (now - start < std::chrono::milliseconds(50))
      std::this_thread::yield();
    else
      std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

// One request: returns its MPI code.
int wait_or_abort(MPI_Request& req, MPI_Status* status, const char* op, const Where& w, double timeout_s) {
  int rc = MPI_SUCCESS;
  wait_all_or_abort(&req, status, &rc, 1, op, w, timeout_s);
  return rc;
}

// Waits for req and turns a failure into a cs::Error naming the call.
#define CS_MPI_WAIT(req, op, call, where)                                   \
  check_mpi(wait_or_abort((req), nullptr, (op), (where), timeout_s_), call, \
            __FILE__, __LINE__, (where))

// Checks one received piece (len bytes at byte offset `at` of t) against what peer sent: a
// message longer or shorter than the tensor is a cs::Error naming both sizes.
void check_received(int rc, const MPI_Status& status, int len, size_t at, int peer, const Tensor& t,
                    const char* op, const Where& w) {
  int error_class = MPI_SUCCESS, got = len;
  if (rc != MPI_SUCCESS) MPI_Error_class(rc, &error_class);
  if (error_class == MPI_ERR_TRUNCATE)
    throw Error(fmt::format("[mpi] {} on {}: rank {} sent more bytes than the receiving tensor {} {} holds ({})", op,
                            w.str(), peer, t.shape.str(), dtype_name(t.dtype), t.nbytes()));
  check_mpi(rc, "MPI_Irecv", __FILE__, __LINE__, w);
  check_mpi(MPI_Get_count(&status, MPI_BYTE, &got), "MPI_Get_count", __FILE__, __LINE__, w);
  if (got != len)
    throw Error(fmt::format("[mpi] {} on {}: rank {} sent {} bytes, the receiving tensor {} {} has {}", op, w.str(),
                            peer, at + size_t(got), t.shape.str(), dtype_name(t.dtype), t.nbytes()));
}

// The pieces of an n-byte message: at least one, so that an empty tensor's send meets its recv.
int64_t piece_count(size_t n, int64_t max_piece) { return std::max<int64_t>(1, (int64_t(n) + max_piece - 1) / max_piece); }
int piece_len(size_t n, int64_t max_piece, int64_t k) {
  return int(std::min<int64_t>(max_piece, std::max<int64_t>(0, int64_t(n) - k * max_piece)));
}

bool is_sum_dtype(DType t) {
  return t == DType::F32 || t == DType::F64 || t == DType::BF16 || t == DType::F16;
}

MPI_Datatype sum_type(DType t) {
  switch (t) {
    case DType::F32: return MPI_FLOAT;
    case DType::F64: return MPI_DOUBLE;
    default: return MPI_UINT16_T;  // bf16 / f16 travel as bits and are added in f32
  }
}

// out[i] = ((rows[0][i] + rows[1][i]) + ...) + rows[p-1][i] for i < n; rows are p consecutive
// runs of n elements. T is the storage type, A the type added in.
template <typename T, typename A, A (*load)(T), T (*store)(A)>
void fold_rows(const void* rows_v, int p, int64_t n, void* out_v) {
  const T* rows = static_cast<const T*>(rows_v);
  T* out = static_cast<T*>(out_v);
  std::vector<A> scratch;
  A* acc = nullptr;
  if constexpr (std::is_same_v<T, A>) {
    acc = out;  // out never overlaps rows
  } else {
    scratch.resize(size_t(n));
    acc = scratch.data();
  }
  for (int64_t i = 0; i < n; ++i) acc[i] = load(rows[i]);
  for (int r = 1; r < p; ++r) {
    const T* row = rows + int64_t(r) * n;
    for (int64_t i = 0; i < n; ++i) acc[i] += load(row[i]);
  }
  if constexpr (!std::is_same_v<T, A>)
    for (int64_t i = 0; i < n; ++i) out[i] = store(acc[i]);
}

template <typename T>
T identity(T x) { return x; }

void fold(DType t, const void* rows, int p, int64_t n, void* out) {
  switch (t) {
    case DType::F32: return fold_rows<float, float, identity<float>, identity<float>>(rows, p, n, out);
    case DType::F64: return fold_rows<double, double, identity<double>, identity<double>>(rows, p, n, out);
    case DType::BF16: return fold_rows<uint16_t, float, bf16_to_f32, f32_to_bf16>(rows, p, n, out);
    case DType::F16: return fold_rows<uint16_t, float, f16_to_f32, f32_to_f16>(rows, p, n, out);
    default: CS_CHECK(false) << dtype_name(t);
  }
}

// A derived datatype freed when it leaves scope.
struct OwnedType {
  MPI_Datatype t = MPI_DATATYPE_NULL;
  ~OwnedType() {
    if (t != MPI_DATATYPE_NULL) MPI_Type_free(&t);
  }
};

bool overlaps(const void* a, size_t na, const void* b, size_t nb) {
  const auto pa = reinterpret_cast<uintptr_t>(a), pb = reinterpret_cast<uintptr_t>(b);
  return na && nb && pa < pb + nb && pb < pa + na;
}

}  // namespace

// ---- process lifetime ----

bool mpi_init_if_launched(int* argc, char*** argv) {
  const bool launched = std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE") || std::getenv("PMIX_RANK");
  if (!launched) return false;
  int initialised = 0;
  MPI_Initialized(&initialised);
  if (initialised) return true;
  int provided = 0;
  const int rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
  if (rc != MPI_SUCCESS)
    throw Error(fmt::format("[mpi] MPI_Init_thread failed: {} ({}:{}). Hint: check the launcher's output above",
                            mpi_error_string(rc), __FILE__, __LINE__));
  return true;
}

bool mpi_active() {
  int initialised = 0, finalised = 0;
  MPI_Initialized(&initialised);
  MPI_Finalized(&finalised);
  return initialised && !finalised;
}

void mpi_finalize() {
  if (mpi_active()) MPI_Finalize();
}

void mpi_abort(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  if (mpi_active()) MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

// ---- construction ----

MpiGroup::MpiGroup(std::unique_ptr<Comm> comm, std::string name, double timeout_s)
    : comm_(std::move(comm)), name_(std::move(name)), timeout_s_(timeout_s) {
  const Where w{name_, -1, -1};
  CS_MPI_CHECK(MPI_Comm_set_errhandler(comm_->handle, MPI_ERRORS_RETURN), w);
  CS_MPI_CHECK(MPI_Comm_rank(comm_->handle, &rank_), w);
  CS_MPI_CHECK(MPI_Comm_size(comm_->handle, &size_), w);
  world_rank_ = world_rank_now();
}

MpiGroup::~MpiGroup() {
  if (comm_ && comm_->handle != MPI_COMM_NULL && mpi_active()) MPI_Comm_free(&comm_->handle);
}

std::unique_ptr<MpiGroup> MpiGroup::world(double timeout_s) {
  if (!mpi_active())
    throw Error("[mpi] MpiGroup::world: MPI is not initialised. Hint: call mpi_init_if_launched first in main");
  if (!(timeout_s > 0)) throw Error(fmt::format("[mpi] MpiGroup::world: timeout {} s, expected > 0", timeout_s));
  int rank = 0, size = 0;
  const std::string name = "world";
  CS_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank), (Where{name, -1, -1}));
  CS_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size), (Where{name, rank, -1}));
  const Where w{name, rank, size};
  auto comm = std::make_unique<Comm>();
  MPI_Request req;
  CS_MPI_CHECK(MPI_Comm_idup(MPI_COMM_WORLD, &comm->handle, &req), w);
  check_mpi(wait_or_abort(req, nullptr, "MPI_Comm_idup", w, timeout_s), "MPI_Comm_idup", __FILE__, __LINE__, w);
  return std::unique_ptr<MpiGroup>(new MpiGroup(std::move(comm), name, timeout_s));
}

std::unique_ptr<Group> MpiGroup::split(int colour, int key) {
  return split(colour, key, fmt::format("{}/{}", name_, colour));
}

std::unique_ptr<MpiGroup> MpiGroup::split(int colour, int key, std::string name) {
  const Where w{name_, rank_, size_};
  if (colour < 0) throw Error(fmt::format("[mpi] split on {}: colour {}, expected >= 0", w.str(), colour));
  // MPI_Comm_split blocks without a deadline: meet in a deadline-guarded barrier first, so a
  // rank that never arrives is named instead of hanging the others.
  MPI_Request req;
  CS_MPI_CHECK(MPI_Ibarrier(comm_->handle, &req), w);
  CS_MPI_WAIT(req, "split", "MPI_Ibarrier", w);
  auto comm = std::make_unique<Comm>();
  CS_MPI_CHECK(MPI_Comm_split(comm_->handle, colour, key, &comm->handle), w);
  auto child = std::unique_ptr<MpiGroup>(new MpiGroup(std::move(comm), std::move(name), timeout_s_));
  child->max_piece_ = max_piece_;
  return child;
}

void MpiGroup::set_max_piece(int64_t n) {
  CS_CHECK(n >= 1 && n <= INT_MAX) << "max piece " << n;
  max_piece_ = n;
}

// ---- collectives ----

namespace {
void check_tensor(const char* op, const Where& w, Ctx& c, const Tensor& t, bool sum) {
  if (sum && !is_sum_dtype(t.dtype))
    throw Error(fmt::format("[mpi] {} on {}: expected a float tensor (F32, F64, BF16 or F16), got {}", op, w.str(),
                            dtype_name(t.dtype)));
  if (t.numel() && t.device != c.backend.device())
    throw Error(fmt::format("[mpi] {} on {}: the tensor is on another device than the context's {} backend", op,
                            w.str(), c.backend.name()));
}
}  // namespace

namespace {
// Payload bytes this process has handed to MPI to send (each collective counted as its algorithm
// sends: what `make bench-parallel` compares with the analytic count).
int64_t g_bytes_sent = 0;
}  // namespace

int64_t mpi_bytes_sent() { return g_bytes_sent; }

void MpiGroup::all_reduce_sum(Ctx& c, const Tensor& t) {
  const Where w{name_, rank_, size_};
  check_tensor("all_reduce_sum", w, c, t, true);
  if (size_ == 1 || t.numel() == 0) return;
  HostCopy host(c, t, HostCopy::kRead);
  char* data = static_cast<char*>(host.data());
  const size_t es = dtype_size(t.dtype);
  const MPI_Datatype type = sum_type(t.dtype);
  const int p = size_;
  std::vector<int> counts(p), displs(p), recv_counts(p), recv_displs(p);
  std::vector<char>& rows = rows_;
  // Pieces of at most max_piece_ elements; in each, chunk r (near-equal, the first n % p one
  // larger) is folded by rank r and then gathered by all.
  for (int64_t begin = 0; begin < t.numel(); begin += max_piece_) {
    const int64_t n = std::min<int64_t>(max_piece_, t.numel() - begin);
    for (int r = 0, at = 0; r < p; ++r) {
      counts[r] = int(n / p + (r < n % p));
      displs[r] = at;
      at += counts[r];
    }
    const int mine = counts[rank_];
    for (int r = 0; r < p; ++r) {
      recv_counts[r] = mine;
      recv_displs[r] = r * mine;
    }
    rows.resize(size_t(p) * size_t(mine) * es);
    char* piece = data + begin * es;
    MPI_Request req;
    CS_MPI_CHECK(MPI_Ialltoallv(piece, counts.data(), displs.data(), type, rows.data(), recv_counts.data(),
                                recv_displs.data(), type, comm_->handle, &req), w);
    CS_MPI_WAIT(req, "all_reduce_sum", "MPI_Ialltoallv", w);
    g_bytes_sent += (n - mine) * int64_t(es) + int64_t(mine) * int64_t(es) * (p - 1);  // + the gather below
    fold(t.dtype, rows.data(), p, mine, piece + size_t(displs[rank_]) * es);
    CS_MPI_CHECK(MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, piece, counts.data(), displs.data(), type,
                                 comm_->handle, &req), w);
    CS_MPI_WAIT(req, "all_reduce_sum", "MPI_Iallgatherv", w);
  }
  host.flush();
}

void MpiGroup::reduce_scatter_sum(Ctx& c, const Tensor& in, const Tensor& out) {
  const Where w{name_, rank_, size_};
  check_tensor("reduce_scatter_sum", w, c, in, true);
  check_tensor("reduce_scatter_sum", w, c, out, true);
  CS_CHECK(in.dtype == out.dtype && in.numel() == int64_t(size_) * out.numel())
      << "reduce_scatter_sum " << in.shape.str() << " " << dtype_name(in.dtype) << " -> " << out.shape.str() << " "
      << dtype_name(out.dtype) << " on group " << name_ << " of " << size_;
  const int64_t m = out.numel();
  if (m == 0) return;
  const size_t es = dtype_size(in.dtype);
  const bool in_place = c.backend.is_host() && out.data == static_cast<char*>(in.data) + size_t(rank_) * m * es;
  CS_CHECK(!c.backend.is_host() || in_place || !overlaps(in.data, in.nbytes(), out.data, out.nbytes()))
      << "reduce_scatter_sum: out overlaps in other than as this rank's chunk";
  HostCopy src(c, in, HostCopy::kRead);
  HostCopy dst(c, out, HostCopy::kWrite);
  const MPI_Datatype type = sum_type(in.dtype);
  const int p = size_;
  // Pieces [a, a + len) of every rank's chunk: rank j's chunk starts j * m elements in, so the
  // send type is len elements with an extent of m (one per destination rank, no packing copy).
  const int64_t max_len = std::max<int64_t>(1, max_piece_ / p);
  std::vector<char>& rows = rows_;
  rows.resize(size_t(p) * size_t(std::min(max_len, m)) * es);
  for (int64_t a = 0; a < m; a += max_len) {
    const int len = int(std::min(max_len, m - a));
    OwnedType run, strided;
    CS_MPI_CHECK(MPI_Type_contiguous(len, type, &run.t), w);
    CS_MPI_CHECK(MPI_Type_create_resized(run.t, 0, MPI_Aint(m * es), &strided.t), w);
    CS_MPI_CHECK(MPI_Type_commit(&strided.t), w);
    MPI_Request req;
    CS_MPI_CHECK(MPI_Ialltoall(static_cast<char*>(src.data()) + a * es, 1, strided.t, rows.data(), len, type,
                               comm_->handle, &req), w);
    CS_MPI_WAIT(req, "reduce_scatter_sum", "MPI_Ialltoall", w);
    g_bytes_sent += int64_t(len) * int64_t(es) * (p - 1);
    fold(in.dtype, rows.data(), p, len, static_cast<char*>(dst.data()) + a * es);
  }
  dst.flush();
}

void MpiGroup::all_gather(Ctx& c, const Tensor& in, const Tensor& out) {
  const Where w{name_, rank_, size_};
  check_tensor("all_gather", w, c, in, false);
  check_tensor("all_gather", w, c, out, false);
  const size_t nb = in.nbytes();
  CS_CHECK(out.nbytes() == size_t(size_) * nb)
      << "all_gather " << in.shape.str() << " -> " << out.shape.str() << " on group " << name_ << " of " << size_;
  if (nb == 0) return;
  const bool in_place = c.backend.is_host() && in.data == static_cast<char*>(out.data) + size_t(rank_) * nb;
  CS_CHECK(!c.backend.is_host() || in_place || !overlaps(in.data, nb, out.data, out.nbytes()))
      << "all_gather: in overlaps out other than as this rank's chunk";
  std::vector<uint8_t> staged_in;
  const char* src = static_cast<const char*>(in.data);
  if (!in_place && !c.backend.is_host()) {
    staged_in.resize(nb);
    c.backend.download(c, in, staged_in.data());
    src = reinterpret_cast<const char*>(staged_in.data());
  } else if (c.backend.is_host()) {
    c.backend.synchronize(c);
  }
  HostCopy dst(c, out, HostCopy::kWrite);
  char* base = static_cast<char*>(dst.data());
  // Pieces [a, a + len) of every rank's bytes: rank j's land j * nb bytes in, so the receive type
  // is len bytes with an extent of nb.
  for (size_t a = 0; a < nb; a += size_t(max_piece_)) {
    const int len = int(std::min(size_t(max_piece_), nb - a));
    OwnedType run, strided;
    CS_MPI_CHECK(MPI_Type_contiguous(len, MPI_BYTE, &run.t), w);
    CS_MPI_CHECK(MPI_Type_create_resized(run.t, 0, MPI_Aint(nb), &strided.t), w);
    CS_MPI_CHECK(MPI_Type_commit(&strided.t), w);
    MPI_Request req;
    const void* send = in_place ? MPI_IN_PLACE : static_cast<const void*>(src + a);
    CS_MPI_CHECK(MPI_Iallgather(send, len, MPI_BYTE, base + a, 1, strided.t, comm_->handle, &req), w);
    CS_MPI_WAIT(req, "all_gather", "MPI_Iallgather", w);
    g_bytes_sent += int64_t(len) * (size_ - 1);
  }
  dst.flush();
}

void MpiGroup::broadcast(Ctx& c, const Tensor& t, int root) {
  const Where w{name_, rank_, size_};
  check_tensor("broadcast", w, c, t, false);
  if (root < 0 || root >= size_)
    throw Error(fmt::format("[mpi] broadcast on {}: root {} is not a rank of this group of {}", w.str(), root, size_));
  if (size_ == 1 || t.nbytes() == 0) return;
  HostCopy host(c, t, rank_ == root ? HostCopy::kRead : HostCopy::kWrite);
  char* data = static_cast<char*>(host.data());
  for (size_t a = 0; a < t.nbytes(); a += size_t(max_piece_)) {
    const int len = int(std::min(size_t(max_piece_), t.nbytes() - a));
    MPI_Request req;
    CS_MPI_CHECK(MPI_Ibcast(data + a, len, MPI_BYTE, root, comm_->handle, &req), w);
    CS_MPI_WAIT(req, "broadcast", "MPI_Ibcast", w);
    if (rank_ == root) g_bytes_sent += int64_t(len) * (size_ - 1);
  }
  if (rank_ != root) host.flush();
}

void MpiGroup::check_peer(const char* op, int peer) const {
  if (peer < 0 || peer >= size_ || peer == rank_)
    throw Error(fmt::format("[mpi] {} on {}: peer {} is not another rank of this group of {}", op,
                            Where{name_, rank_, size_}.str(), peer, size_));
}

void MpiGroup::send(Ctx& c, const Tensor& t, int peer) {
  const Where w{name_, rank_, size_};
  check_tensor("send", w, c, t, false);
  check_peer("send", peer);
  HostCopy host(c, t, HostCopy::kRead);
  const char* data = static_cast<const char*>(host.data());
  for (int64_t k = 0; k < piece_count(t.nbytes(), max_piece_); ++k) {
    MPI_Request req;
    CS_MPI_CHECK(MPI_Isend(data + k * max_piece_, piece_len(t.nbytes(), max_piece_, k), MPI_BYTE, peer, kTagP2P,
                           comm_->handle, &req), w);
    CS_MPI_WAIT(req, "send", "MPI_Isend", w);
  }
  g_bytes_sent += int64_t(t.nbytes());
}

void MpiGroup::recv(Ctx& c, const Tensor& t, int peer) {
  const Where w{name_, rank_, size_};
  check_tensor("recv", w, c, t, false);
  check_peer("recv", peer);
  HostCopy host(c, t, HostCopy::kWrite);
  char* data = static_cast<char*>(host.data());
  for (int64_t k = 0; k < piece_count(t.nbytes(), max_piece_); ++k) {
    const int len = piece_len(t.nbytes(), max_piece_, k);
    MPI_Request req;
    MPI_Status status;
    CS_MPI_CHECK(MPI_Irecv(data + k * max_piece_, len, MPI_BYTE, peer, kTagP2P, comm_->handle, &req), w);
    check_received(wait_or_abort(req, &status, "recv", w, timeout_s_), status, len, size_t(k * max_piece_), peer, t,
                   "recv", w);
  }
  host.flush();
}

void MpiGroup::send_recv(Ctx& c, const Tensor& to_send, int send_peer, const Tensor& to_recv, int recv_peer) {
  const Where w{name_, rank_, size_};
  check_tensor("send_recv", w, c, to_send, false);
  check_tensor("send_recv", w, c, to_recv, false);
  check_peer("send_recv", send_peer);
  check_peer("send_recv", recv_peer);
  HostCopy src(c, to_send, HostCopy::kRead);
  HostCopy dst(c, to_recv, HostCopy::kWrite);
  const char* out = static_cast<const char*>(src.data());
  char* in = static_cast<char*>(dst.data());
  const int64_t sends = piece_count(to_send.nbytes(), max_piece_), recvs = piece_count(to_recv.nbytes(), max_piece_);
  for (int64_t k = 0; k < std::max(sends, recvs); ++k) {
    MPI_Request reqs[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
    MPI_Status statuses[2];
    int rcs[2] = {MPI_SUCCESS, MPI_SUCCESS};
    const int recv_len = piece_len(to_recv.nbytes(), max_piece_, k);
    if (k < recvs)
      CS_MPI_CHECK(MPI_Irecv(in + k * max_piece_, recv_len, MPI_BYTE, recv_peer, kTagP2P, comm_->handle, &reqs[0]), w);
    if (k < sends)
      CS_MPI_CHECK(MPI_Isend(out + k * max_piece_, piece_len(to_send.nbytes(), max_piece_, k), MPI_BYTE, send_peer,
                             kTagP2P, comm_->handle, &reqs[1]), w);
    wait_all_or_abort(reqs, statuses, rcs, 2, "send_recv", w, timeout_s_);
    if (k < recvs)
      check_received(rcs[0], statuses[0], recv_len, size_t(k * max_piece_), recv_peer, to_recv, "send_recv", w);
    check_mpi(rcs[1], "MPI_Isend", __FILE__, __LINE__, w);
  }
  g_bytes_sent += int64_t(to_send.nbytes());
  dst.flush();
}

void MpiGroup::barrier(Ctx&) {
  const Where w{name_, rank_, size_};
  MPI_Request req;
  CS_MPI_CHECK(MPI_Ibarrier(comm_->handle, &req), w);
  CS_MPI_WAIT(req, "barrier", "MPI_Ibarrier", w);
}

}  // namespace cs
