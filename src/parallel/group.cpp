#include "parallel/group.h"

#include <fmt/core.h>

namespace cs {

namespace {
void check_float(const char* op, const std::string& group, const Tensor& t) {
  if (t.dtype != DType::F32 && t.dtype != DType::F64 && t.dtype != DType::BF16 && t.dtype != DType::F16)
    throw Error(fmt::format("[{}] group {}: expected a float tensor, got {}", op, group, dtype_name(t.dtype)));
}
}  // namespace

void SingleGroup::check_peer(const char* op, int peer) const {
  if (peer != 0)
    throw Error(fmt::format("[{}] group {} rank 0: peer {} is not a rank of this group of 1", op, name_, peer));
}

void SingleGroup::all_reduce_sum(Ctx&, const Tensor& t) { check_float("all_reduce_sum", name_, t); }

void SingleGroup::all_gather(Ctx& c, const Tensor& in, const Tensor& out) {
  CS_CHECK(in.nbytes() == out.nbytes()) << "all_gather " << in.shape.str() << " -> " << out.shape.str();
  c.backend.copy(c, in, out);
}

void SingleGroup::reduce_scatter_sum(Ctx& c, const Tensor& in, const Tensor& out) {
  check_float("reduce_scatter_sum", name_, in);
  CS_CHECK(in.nbytes() == out.nbytes()) << "reduce_scatter " << in.shape.str() << " -> " << out.shape.str();
  c.backend.copy(c, in, out);
}

void SingleGroup::broadcast(Ctx&, const Tensor&, int root) { check_peer("broadcast", root); }

void SingleGroup::send(Ctx& c, const Tensor& t, int peer) {
  check_peer("send", peer);
  std::vector<uint8_t> bytes(t.nbytes());
  c.backend.download(c, t, bytes.data());
  mailbox_.push_back(std::move(bytes));
}

void SingleGroup::recv(Ctx& c, const Tensor& t, int peer) {
  check_peer("recv", peer);
  // In a real group this recv would wait forever: say so instead of hanging.
  if (mailbox_.empty())
    throw Error(fmt::format("[recv] group {} rank 0: nothing was sent (a recv without its send)", name_));
  if (mailbox_.front().size() != t.nbytes())
    throw Error(fmt::format("[recv] group {} rank 0: {} bytes were sent, the receiving tensor {} has {}", name_,
                            mailbox_.front().size(), t.shape.str(), t.nbytes()));
  c.backend.upload(c, mailbox_.front().data(), t);
  mailbox_.pop_front();
}

void SingleGroup::send_recv(Ctx& c, const Tensor& to_send, int send_peer, const Tensor& to_recv, int recv_peer) {
  send(c, to_send, send_peer);
  recv(c, to_recv, recv_peer);
}

std::unique_ptr<Group> SingleGroup::split(int colour, int) {
  return std::make_unique<SingleGroup>(fmt::format("{}/{}", name_, colour));
}

}  // namespace cs
