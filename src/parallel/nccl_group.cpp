// NcclGroup (see nccl_group.h). Reductions take F32, F64, BF16 and F16; gathers, broadcasts and
// messages move bytes, so any dtype goes.
#include "parallel/nccl_group.h"

#include <cuda_runtime.h>
#include <fmt/core.h>
#include <nccl.h>

#include <cstring>
#include <vector>

#include "backend/op_check.h"

namespace cs {

namespace {

class NcclGroup final : public Group {
 public:
  // A collective over host's ranks.
  explicit NcclGroup(std::unique_ptr<Group> host) : host_(std::move(host)), cpu_(cpu_backend().make_context()) {
    ncclUniqueId id;
    std::memset(&id, 0, sizeof id);
    if (host_->rank() == 0) check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    host_->broadcast(*cpu_, Tensor(&id, {int64_t(sizeof id)}, DType::U8, Device::CPU), 0);
    check(ncclCommInitRank(&comm_, host_->size(), id, host_->rank()), "ncclCommInitRank");
  }
  ~NcclGroup() override {
    if (comm_) ncclCommDestroy(comm_);
  }
  int rank() const override { return host_->rank(); }
  int size() const override { return host_->size(); }
  std::string name() const override { return host_->name(); }

  void all_reduce_sum(Ctx& c, const Tensor& t) override {
    on_device(c, "all_reduce_sum", t);
    if (t.numel())
      check(ncclAllReduce(t.data, t.data, size_t(t.numel()), sum_type("all_reduce_sum", t), ncclSum, comm_, stream(c)),
            "ncclAllReduce");
  }
  void all_gather(Ctx& c, const Tensor& in, const Tensor& out) override {
    on_device(c, "all_gather", in);
    on_device(c, "all_gather", out);
    CS_CHECK(out.nbytes() == in.nbytes() * size_t(size())) << in.shape.str() << " -> " << out.shape.str();
    if (in.nbytes())
      check(ncclAllGather(in.data, out.data, in.nbytes(), ncclUint8, comm_, stream(c)), "ncclAllGather");
  }
  void reduce_scatter_sum(Ctx& c, const Tensor& in, const Tensor& out) override {
    on_device(c, "reduce_scatter_sum", in);
    on_device(c, "reduce_scatter_sum", out);
    CS_CHECK(in.dtype == out.dtype && in.numel() == out.numel() * size()) << in.shape.str() << " -> " << out.shape.str();
    if (out.numel())
      check(ncclReduceScatter(in.data, out.data, size_t(out.numel()), sum_type("reduce_scatter_sum", in), ncclSum,
                              comm_, stream(c)),
            "ncclReduceScatter");
  }
  void broadcast(Ctx& c, const Tensor& t, int root) override {
    on_device(c, "broadcast", t);
    if (t.nbytes()) check(ncclBroadcast(t.data, t.data, t.nbytes(), ncclUint8, root, comm_, stream(c)), "ncclBroadcast");
  }
  void send(Ctx& c, const Tensor& t, int peer) override {
    on_device(c, "send", t);
    check_peer("send", peer);
    if (t.nbytes()) check(ncclSend(t.data, t.nbytes(), ncclUint8, peer, comm_, stream(c)), "ncclSend");
  }
  void recv(Ctx& c, const Tensor& t, int peer) override {
    on_device(c, "recv", t);
    check_peer("recv", peer);
    if (t.nbytes()) check(ncclRecv(t.data, t.nbytes(), ncclUint8, peer, comm_, stream(c)), "ncclRecv");
  }
  void send_recv(Ctx& c, const Tensor& to_send, int send_peer, const Tensor& to_recv, int recv_peer) override {
    on_device(c, "send_recv", to_send);
    on_device(c, "send_recv", to_recv);
    check_peer("send_recv", send_peer);
    check_peer("send_recv", recv_peer);
    // One NCCL group: both progress together, so two ranks exchanging never wait on each other.
    check(ncclGroupStart(), "ncclGroupStart");
    if (to_send.nbytes()) check(ncclSend(to_send.data, to_send.nbytes(), ncclUint8, send_peer, comm_, stream(c)), "ncclSend");
    if (to_recv.nbytes()) check(ncclRecv(to_recv.data, to_recv.nbytes(), ncclUint8, recv_peer, comm_, stream(c)), "ncclRecv");
    check(ncclGroupEnd(), "ncclGroupEnd");
  }
  void barrier(Ctx& c) override {
    c.backend.synchronize(c);
    host_->barrier(*cpu_);
  }
  std::unique_ptr<Group> split(int colour, int key) override {
    return std::make_unique<NcclGroup>(host_->split(colour, key));
  }

 private:
  static cudaStream_t stream(const Ctx& c) { return static_cast<cudaStream_t>(c.stream); }
  void check(ncclResult_t r, const char* call) const {
    if (r != ncclSuccess)
      throw Error(fmt::format("[nccl] {} on group {} (rank {} of {}): {}", call, name(), rank(), size(),
                              ncclGetErrorString(r)));
  }
  void on_device(const Ctx& c, const char* op, const Tensor& t) const {
    if (c.backend.device() != Device::CUDA)
      throw Error(fmt::format("[nccl] {} on group {}: the context's backend is {}, expected cuda", op, name(),
                              c.backend.name()));
    if (t.numel() && t.device != Device::CUDA)
      throw Error(fmt::format("[nccl] {} on group {}: the tensor is on {}, expected cuda", op, name(),
                              device_name(t.device)));
  }
  ncclDataType_t sum_type(const char* op, const Tensor& t) const {
    switch (t.dtype) {
      case DType::F32: return ncclFloat32;
      case DType::F64: return ncclFloat64;
      case DType::BF16: return ncclBfloat16;
      case DType::F16: return ncclFloat16;
      default:
        throw Error(fmt::format("[nccl] {} on group {}: expected a float tensor (F32, F64, BF16 or F16), got {}", op,
                                name(), dtype_name(t.dtype)));
    }
  }
  void check_peer(const char* op, int peer) const {
    if (peer < 0 || peer >= size() || peer == rank())
      throw Error(fmt::format("[nccl] {} on group {}: peer {} is not another rank of the group (size {})", op, name(),
                              peer, size()));
  }

  std::unique_ptr<Group> host_;
  std::unique_ptr<Ctx> cpu_;  // the bootstrap's and the barrier's context for host_
  ncclComm_t comm_ = nullptr;
};

}  // namespace

std::unique_ptr<Group> group_for_device(std::unique_ptr<Group> world, Backend& backend) {
  if (backend.device() != Device::CUDA || world->size() == 1) return world;
  return std::make_unique<NcclGroup>(std::move(world));
}

}  // namespace cs
