// Group: the collective-communication interface every parallel piece talks through (TP, PP, DP
// groups are all Groups). Collectives work on device tensors and receive the execution context,
// so a GPU implementation orders itself after the compute stream (llm.c's zero.cuh, MLX's
// all_sum(..., Stream)); the host never sees the data. Implementations: SingleGroup here (one
// process: every collective a copy or a no-op), MPI and NCCL beside it. Passed explicitly: there
// are no global process groups.
#pragma once
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace cs {

class Group {
 public:
  virtual ~Group() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // A name for error messages ("tp", "dp", "world", ...).
  virtual std::string name() const = 0;

  // In place: t[i] = sum over ranks of t[i] (f32 or f64; every rank the same shape).
  virtual void all_reduce_sum(Ctx& c, const Tensor& t) = 0;
  // out (size * in.numel()) = concatenation of every rank's in, in rank order.
  virtual void all_gather(Ctx& c, const Tensor& in, const Tensor& out) = 0;
  // out (in.numel() / size) = this rank's chunk of the sum over ranks of in.
  virtual void reduce_scatter_sum(Ctx& c, const Tensor& in, const Tensor& out) = 0;
  // t = root's t.
  virtual void broadcast(Ctx& c, const Tensor& t, int root) = 0;
  // Point to point (pipeline stages): t goes to rank `peer` of this group, which receives it into
  // a tensor of the same byte size with recv(..., src = this rank).
  virtual void send(Ctx& c, const Tensor& t, int peer) = 0;
  virtual void recv(Ctx& c, const Tensor& t, int peer) = 0;
  // Sends to_send to send_peer while receiving to_recv from recv_peer (Megatron's
  // send_forward_recv_backward and its kin): both progress together, so two ranks exchanging
  // tensors never wait on each other's send.
  virtual void send_recv(Ctx& c, const Tensor& to_send, int send_peer, const Tensor& to_recv, int recv_peer) = 0;
  virtual void barrier(Ctx& c) = 0;
  // Megatron's / MPI_Comm_split's split: the ranks passing the same colour form a new group,
  // ordered by key (then by rank here). Every rank of this group must call it.
  virtual std::unique_ptr<Group> split(int colour, int key) = 0;
};

// The group of one process: reductions and broadcasts leave data as it is, gathers and scatters
// copy, send queues a copy for this same rank's recv (first in, first out).
class SingleGroup final : public Group {
 public:
  explicit SingleGroup(std::string name = "world") : name_(std::move(name)) {}
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string name() const override { return name_; }
  void all_reduce_sum(Ctx& c, const Tensor& t) override;
  void all_gather(Ctx& c, const Tensor& in, const Tensor& out) override;
  void reduce_scatter_sum(Ctx& c, const Tensor& in, const Tensor& out) override;
  void broadcast(Ctx& c, const Tensor& t, int root) override;
  void send(Ctx& c, const Tensor& t, int peer) override;
  void recv(Ctx& c, const Tensor& t, int peer) override;
  void send_recv(Ctx& c, const Tensor& to_send, int send_peer, const Tensor& to_recv, int recv_peer) override;
  void barrier(Ctx&) override {}
  std::unique_ptr<Group> split(int colour, int key) override;

 private:
  void check_peer(const char* op, int peer) const;
  std::string name_;
  std::deque<std::vector<uint8_t>> mailbox_;  // sent, not yet received
};

}  // namespace cs
