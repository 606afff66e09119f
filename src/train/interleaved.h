// Megatron's interleaved 1F1B schedule (schedules.py forward_backward_pipelining_with_interleaving;
// Narayanan et al. 2021 §2.2): each of the P pipeline ranks holds V model chunks, chunk v of rank
// p being layers [(v P + p) N, (v P + p + 1) N); activations go rank p -> p + 1 within a chunk and
// rank P - 1 chunk v -> rank 0 chunk v + 1, gradients the reverse way.
// Two parts: the compute order of each rank (Megatron's, exactly: warm-up forwards, 1F1B,
// cool-down) and the sends and receives around it. Our point-to-point calls block, so the messages
// are placed by a simulation of every rank (the same on every rank): a message is exchanged once
// its sender has made it and its receiver has room for it, and every rank performs its sends,
// receives and computes in the order of that one global sequence, which cannot deadlock (the
// earliest pending event always has both of its ranks ready).
#pragma once
#include <cstdint>
#include <vector>

#include "model/model.h"
#include "parallel/group.h"
#include "train/pipeline.h"

namespace cs {

// One compute step of a rank: forward or backward of micro-batch `micro` through model chunk
// `chunk`.
struct PipeStep {
  int chunk = 0;
  int64_t micro = 0;
  bool forward = true;
  bool operator==(const PipeStep&) const = default;
};

// Megatron's get_model_chunk_id: the chunk of virtual micro-batch k (forwards go through the
// chunks in order, P micro-batches at a time; backwards in reverse order).
int interleaved_chunk(int64_t k, int stages, int chunks, bool forward);
// Megatron's get_microbatch_id_in_model_chunk: the micro-batch of virtual micro-batch k.
int64_t interleaved_micro(int64_t k, int stages, int chunks);

// Rank `stage`'s compute order for micro_batches micro-batches (a multiple of stages): warm-up
// forwards ((P - p - 1) x 2 + (V - 1) x P of them, all M V when M = P), then one forward and one
// backward in turn, then the remaining backwards; forward_only: the M V forwards.
std::vector<PipeStep> interleaved_order(int stage, int stages, int chunks, int64_t micro_batches,
                                        bool forward_only);

// One action of a rank's part of the global sequence: a compute step, or a send / receive of an
// activation (forward) or of a gradient (backward) of (chunk, micro) on this rank, with `peer`.
// slot: the activation slot of (chunk, micro) on this rank.
struct PipeAction {
  enum Kind { kCompute, kSend, kRecv } kind = kCompute;
  PipeStep step;  // compute: the step; send / recv: chunk, micro and forward (activation) or not
                  // (gradient)
  int64_t slot = 0;
  int peer = -1;
};

// Every rank's actions (index: the stage), placed by the simulation; slots: the activation slots a
// chunk may use (0: as many as the schedule needs, reported in *needed). CS_CHECKs that the
// simulation completes.
std::vector<std::vector<PipeAction>> interleaved_actions(int stages, int chunks,
                                                         int64_t micro_batches, bool forward_only,
                                                         int64_t slots = 0,
                                                         int64_t* needed = nullptr);

// The fewest activation slots per chunk the schedule completes with (what the model is planned
// with, and what run_interleaved places its messages within).
int64_t interleaved_slots(int stages, int chunks, int64_t micro_batches, bool forward_only = false);

// Runs this rank's actions: forward(micro, slot) and backward(micro, slot) with the model's chunk
// already selected (model.use_chunk); the model's slots must cover the schedule's.
void run_interleaved(Model& model, Group& pp, int64_t micro_batches, int64_t b, int64_t t,
                     const MicroStep& forward, const MicroStep& backward);
// Forward only (validation): the same order without backwards, within the model's slots.
void run_interleaved_forward_only(Model& model, Group& pp, int64_t micro_batches, int64_t b,
                                  int64_t t, const MicroStep& forward);

}  // namespace cs
