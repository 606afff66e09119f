// The interleaved 1F1B schedule without MPI: each rank's compute order against a hand-derived one
// (P = 2, V = 2, M = 4, from Megatron's schedules.py rules), and every rank's actions replayed with
// blocking sends and receives: they complete (no deadlock), every send meets the receive of the
// same micro-batch and kind, and each micro-batch's chunk forward on a rank comes after the one
// feeding it (backward: the reverse), over a range of P, V and M.
#include "train/interleaved.h"

#include <gtest/gtest.h>

#include <map>
#include <tuple>

namespace cs {
namespace {

PipeStep F(int v, int64_t m) { return {v, m, true}; }
PipeStep B(int v, int64_t m) { return {v, m, false}; }

TEST(Interleaved, ChunkAndMicroBatchOfVirtualMicroBatches) {
  // P = 2, V = 2: forwards take chunk 0 for two micro-batches, then chunk 1 for the same two.
  const int fwd[] = {0, 0, 1, 1, 0, 0, 1, 1}, bwd[] = {1, 1, 0, 0, 1, 1, 0, 0};
  const int64_t micro[] = {0, 1, 0, 1, 2, 3, 2, 3};
  for (int k = 0; k < 8; ++k) {
    EXPECT_EQ(interleaved_chunk(k, 2, 2, true), fwd[k]) << k;
    EXPECT_EQ(interleaved_chunk(k, 2, 2, false), bwd[k]) << k;
    EXPECT_EQ(interleaved_micro(k, 2, 2), micro[k]) << k;
  }
}

TEST(Interleaved, OrderOfTwoStagesTwoChunksFourMicroBatches) {
  // Rank 0: (2 - 0 - 1) x 2 + (2 - 1) x 2 = 4 warm-up forwards; rank 1: 2.
  const std::vector<PipeStep> rank0 = {F(0, 0), F(0, 1), F(1, 0), F(1, 1), F(0, 2), B(1, 0),
                                       F(0, 3), B(1, 1), F(1, 2), B(0, 0), F(1, 3), B(0, 1),
                                       B(1, 2), B(1, 3), B(0, 2), B(0, 3)};
  const std::vector<PipeStep> rank1 = {F(0, 0), F(0, 1), F(1, 0), B(1, 0), F(1, 1), B(1, 1),
                                       F(0, 2), B(0, 0), F(0, 3), B(0, 1), F(1, 2), B(1, 2),
                                       F(1, 3), B(1, 3), B(0, 2), B(0, 3)};
  EXPECT_EQ(interleaved_order(0, 2, 2, 4, false), rank0);
  EXPECT_EQ(interleaved_order(1, 2, 2, 4, false), rank1);
  // M = P: every forward first (Megatron's all-warm-up case).
  const std::vector<PipeStep> all = {F(0, 0), F(0, 1), F(1, 0), F(1, 1),
                                     B(1, 0), B(1, 1), B(0, 0), B(0, 1)};
  EXPECT_EQ(interleaved_order(1, 2, 2, 2, false), all);
  EXPECT_EQ(interleaved_order(0, 2, 2, 4, true).size(), 8u);
}

// Replays the ranks' actions with blocking point-to-point semantics; returns the global time of
// each compute (rank, chunk, micro, forward), failing the test on a deadlock or a mismatched pair.
std::map<std::tuple<int, int, int64_t, bool>, int64_t> replay(
    const std::vector<std::vector<PipeAction>>& acts) {
  const int P = int(acts.size());
  std::vector<size_t> pc(static_cast<size_t>(P), 0);
  std::map<std::tuple<int, int, int64_t, bool>, int64_t> when;
  int64_t time = 0;
  for (bool progressed = true; progressed;) {
    progressed = false;
    for (int p = 0; p < P; ++p) {
      while (pc[size_t(p)] < acts[size_t(p)].size()) {
        const PipeAction& a = acts[size_t(p)][pc[size_t(p)]];
        if (a.kind == PipeAction::kCompute) {
          when[{p, a.step.chunk, a.step.micro, a.step.forward}] = ++time;
          ++pc[size_t(p)];
          progressed = true;
          continue;
        }
        if (a.kind != PipeAction::kSend) break;  // a receive waits for its send
        if (pc[size_t(a.peer)] >= acts[size_t(a.peer)].size()) break;
        const PipeAction& r = acts[size_t(a.peer)][pc[size_t(a.peer)]];
        if (r.kind != PipeAction::kRecv || r.peer != p) break;
        EXPECT_EQ(r.step.micro, a.step.micro);
        EXPECT_EQ(r.step.forward, a.step.forward);
        // Activations go to the next stage (the last's to the first's next chunk), gradients back.
        const int to_chunk = a.step.forward ? (a.peer == 0 ? a.step.chunk + 1 : a.step.chunk)
                                            : (p == 0 ? a.step.chunk - 1 : a.step.chunk);
        EXPECT_EQ(r.step.chunk, to_chunk);
        EXPECT_EQ(a.peer, a.step.forward ? (p + 1) % P : (p + P - 1) % P);
        ++pc[size_t(p)];
        ++pc[size_t(a.peer)];
        ++time;
        progressed = true;
      }
    }
  }
  for (int p = 0; p < P; ++p)
    EXPECT_EQ(pc[size_t(p)], acts[size_t(p)].size()) << "rank " << p << " deadlocked";
  return when;
}

TEST(Interleaved, ActionsCompleteAndFollowTheDataFlow) {
  for (int P : {2, 3, 4})
    for (int V : {2, 3})
      for (int64_t M : {int64_t(P), int64_t(2 * P), int64_t(4 * P)})
        for (bool fwd_only : {false, true}) {
          SCOPED_TRACE(testing::Message()
                       << "P " << P << " V " << V << " M " << M << " forward only " << fwd_only);
          // Within the fewest slots the schedule completes with (what the model is planned with).
          const int64_t cap = interleaved_slots(P, V, M, fwd_only);
          int64_t slots = 0;
          const auto acts = interleaved_actions(P, V, M, fwd_only, cap, &slots);
          EXPECT_LE(slots, cap);
          for (int p = 0; p < P; ++p) {  // the computes are Megatron's order
            std::vector<PipeStep> computes;
            for (const PipeAction& a : acts[size_t(p)])
              if (a.kind == PipeAction::kCompute) computes.push_back(a.step);
            EXPECT_EQ(computes, interleaved_order(p, P, V, M, fwd_only)) << "rank " << p;
          }
          const auto when = replay(acts);
          for (int p = 0; p < P; ++p)
            for (int v = 0; v < V; ++v)
              for (int64_t m = 0; m < M; ++m) {
                const bool first = p == 0 && v == 0;
                const int pp = p == 0 ? P - 1 : p - 1,
                          pv = p == 0 ? v - 1 : v;  // the stage feeding this one
                if (!first) {
                  EXPECT_GT(when.at({p, v, m, true}), when.at({pp, pv, m, true}));
                }
                if (!first && !fwd_only) {
                  EXPECT_LT(when.at({p, v, m, false}), when.at({pp, pv, m, false}));
                }
                if (!fwd_only) {
                  EXPECT_GT(when.at({p, v, m, false}), when.at({p, v, m, true}));
                }
              }
          if (!fwd_only) {
            EXPECT_LE(slots, M) << "slots per chunk";
          }
        }
}

TEST(Interleaved, SlotsOfTheTrainingSchedule) {
  // The most loaded chunk holds min(M, 2P) micro-batches between forward and backward in Megatron's
  // order (P = V = 2, M = 4, rank 0: chunk 0's forwards of micro-batches 0..3 all run before its
  // first backward); forward only, each chunk needs one.
  for (int P : {2, 3, 4})
    for (int V : {2, 3})
      for (int64_t M : {int64_t(P), int64_t(2 * P), int64_t(8 * P)}) {
        EXPECT_EQ(interleaved_slots(P, V, M), std::min<int64_t>(M, 2 * P))
            << P << " " << V << " " << M;
        EXPECT_EQ(interleaved_slots(P, V, M, true), 1) << P << " " << V << " " << M;
      }
}

}  // namespace
}  // namespace cs
