#include "train/interleaved.h"

#include <algorithm>
#include <deque>
#include <map>
#include <tuple>

#include "core/error.h"

namespace cs {

int interleaved_chunk(int64_t k, int stages, int chunks, bool forward) {
  const int v = int((k % (int64_t(stages) * chunks)) / stages);
  return forward ? v : chunks - 1 - v;
}

int64_t interleaved_micro(int64_t k, int stages, int chunks) {
  const int64_t group = k / (int64_t(stages) * chunks);
  return group * stages + k % stages;
}

std::vector<PipeStep> interleaved_order(int stage, int stages, int chunks, int64_t micro_batches,
                                        bool forward_only) {
  CS_CHECK(stages >= 1 && chunks >= 1 && micro_batches % stages == 0)
      << micro_batches << " micro-batches over " << stages << " stages";
  const int64_t total = micro_batches * chunks;
  int64_t warmup = total;
  if (!forward_only &&
      micro_batches != stages)  // M = P: every forward first (Megatron's all_warmup)
    warmup =
        std::min<int64_t>(total, int64_t(stages - stage - 1) * 2 + int64_t(chunks - 1) * stages);
  auto fwd = [&](int64_t k) {
    return PipeStep{interleaved_chunk(k, stages, chunks, true),
                    interleaved_micro(k, stages, chunks), true};
  };
  auto bwd = [&](int64_t k) {
    return PipeStep{interleaved_chunk(k, stages, chunks, false),
                    interleaved_micro(k, stages, chunks), false};
  };
  std::vector<PipeStep> out;
  for (int64_t k = 0; k < warmup; ++k) out.push_back(fwd(k));
  if (forward_only) return out;
  for (int64_t k = 0; k < total - warmup; ++k) {
    out.push_back(fwd(warmup + k));
    out.push_back(bwd(k));
  }
  for (int64_t k = total - warmup; k < total; ++k) out.push_back(bwd(k));
  return out;
}

namespace {
// A message made and not yet exchanged: to rank `to`'s chunk `to_chunk` from `from`'s `from_chunk`.
struct Message {
  int from, from_chunk, to, to_chunk;
  int64_t micro, from_slot;
  bool activation;
};

// The simulated state of one rank.
struct RankState {
  std::vector<PipeStep> ops;
  size_t pc = 0;
  std::vector<std::vector<bool>> used;              // [chunk][slot]
  std::map<std::pair<int, int64_t>, int64_t> slot;  // (chunk, micro) -> its slot
  std::vector<int64_t> dres;  // per chunk: -1 free, -2 holds an outgoing gradient, m: micro m's
  std::deque<Message> out;
};

// The simulation; false when it stalls (too few slots for this order).
bool simulate(int stages, int chunks, int64_t micro_batches, bool forward_only, int64_t slots,
              int64_t* needed, std::vector<std::vector<PipeAction>>& acts_out) {
  const int P = stages, V = chunks;
  std::vector<RankState> rs(static_cast<size_t>(P));
  for (int p = 0; p < P; ++p) {
    rs[size_t(p)].ops = interleaved_order(p, P, V, micro_batches, forward_only);
    rs[size_t(p)].used.assign(size_t(V), {});
    rs[size_t(p)].dres.assign(size_t(V), -1);
  }
  std::vector<std::vector<PipeAction>>& acts = acts_out;
  acts.assign(static_cast<size_t>(P), {});
  int64_t peak = 0;
  auto alloc = [&](RankState& r, int v, int64_t m) -> bool {
    std::vector<bool>& u = r.used[size_t(v)];
    auto it = std::find(u.begin(), u.end(), false);
    if (it == u.end()) {
      if (slots > 0 && int64_t(u.size()) >= slots) return false;
      u.push_back(false);
      it = u.end() - 1;
    }
    *it = true;
    r.slot[{v, m}] = it - u.begin();
    peak = std::max<int64_t>(peak, it - u.begin() + 1);
    return true;
  };
  auto release = [&](RankState& r, int v, int64_t m) {
    auto it = r.slot.find({v, m});
    r.used[size_t(v)][size_t(it->second)] = false;
    r.slot.erase(it);
  };
  auto done = [&] {
    for (const RankState& r : rs)
      if (r.pc < r.ops.size() || !r.out.empty()) return false;
    return true;
  };
  while (!done()) {
    bool progressed = false;
    // Exchanges first, as early as the receiver has room: an activation needs a free slot of the
    // receiving chunk, a gradient the chunk's gradient buffer.
    for (int p = 0; p < P; ++p) {
      std::deque<Message>& q = rs[size_t(p)].out;
      for (auto it = q.begin(); it != q.end();) {
        const Message msg = *it;
        RankState &src = rs[size_t(msg.from)], &dst = rs[size_t(msg.to)];
        int64_t to_slot = -1;
        if (msg.activation) {
          if (!alloc(dst, msg.to_chunk, msg.micro)) {
            ++it;
            continue;
          }
          to_slot = dst.slot.at({msg.to_chunk, msg.micro});
          if (forward_only) release(src, msg.from_chunk, msg.micro);
        } else {
          if (dst.dres[size_t(msg.to_chunk)] != -1) {
            ++it;
            continue;
          }
          dst.dres[size_t(msg.to_chunk)] = msg.micro;
          src.dres[size_t(msg.from_chunk)] = -1;
          to_slot = dst.slot.at({msg.to_chunk, msg.micro});
        }
        acts[size_t(msg.from)].push_back({PipeAction::kSend,
                                          {msg.from_chunk, msg.micro, msg.activation},
                                          msg.from_slot,
                                          msg.to});
        acts[size_t(msg.to)].push_back(
            {PipeAction::kRecv, {msg.to_chunk, msg.micro, msg.activation}, to_slot, msg.from});
        it = q.erase(it);
        progressed = true;
      }
    }
    // Then each rank's next compute step, when its input is here.
    for (int p = 0; p < P; ++p) {
      RankState& r = rs[size_t(p)];
      if (r.pc == r.ops.size()) continue;
      const PipeStep s = r.ops[r.pc];
      const int v = s.chunk;
      if (s.forward) {
        const bool embeds = p == 0 && v == 0, last = p == P - 1 && v == V - 1;
        if (embeds ? !alloc(r, v, s.micro) : !r.slot.count({v, s.micro})) continue;
        const int64_t sl = r.slot.at({v, s.micro});
        acts[size_t(p)].push_back({PipeAction::kCompute, s, sl, -1});
        if (!last)
          r.out.push_back({p, v, p + 1 < P ? p + 1 : 0, p + 1 < P ? v : v + 1, s.micro, sl, true});
        else if (forward_only)
          release(r, v, s.micro);
      } else {
        const bool head = p == P - 1 && v == V - 1, first = p == 0 && v == 0;
        if (r.dres[size_t(v)] != (head ? -1 : s.micro)) continue;
        const int64_t sl = r.slot.at({v, s.micro});
        acts[size_t(p)].push_back({PipeAction::kCompute, s, sl, -1});
        release(r, v, s.micro);
        r.dres[size_t(v)] = first ? -1 : -2;
        if (!first)
          r.out.push_back({p, v, p > 0 ? p - 1 : P - 1, p > 0 ? v : v - 1, s.micro, sl, false});
      }
      ++r.pc;
      progressed = true;
    }
    if (!progressed) return false;
  }
  if (needed) *needed = peak;
  return true;
}
}  // namespace

std::vector<std::vector<PipeAction>> interleaved_actions(int stages, int chunks,
                                                         int64_t micro_batches, bool forward_only,
                                                         int64_t slots, int64_t* needed) {
  std::vector<std::vector<PipeAction>> acts;
  CS_CHECK(simulate(stages, chunks, micro_batches, forward_only, slots, needed, acts))
      << "the interleaved schedule stalls: " << stages << " stages, " << chunks << " chunks, "
      << micro_batches << " micro-batches, " << slots << " slots";
  return acts;
}

int64_t interleaved_slots(int stages, int chunks, int64_t micro_batches, bool forward_only) {
  // The fewest slots the order completes with: messages then wait for room instead of piling up
  // (unbounded, the eager exchange would hold more micro-batches than the order needs).
  std::vector<std::vector<PipeAction>> acts;
  for (int64_t cap = 1; cap < micro_batches; ++cap)
    if (simulate(stages, chunks, micro_batches, forward_only, cap, nullptr, acts)) return cap;
  return std::max<int64_t>(micro_batches, 1);  // one slot per micro-batch never waits
}

namespace {
void run_actions(Model& model, Group& pp, const std::vector<PipeAction>& acts, int64_t b, int64_t t,
                 const MicroStep& forward, const MicroStep& backward) {
  Ctx& ctx = model.ctx();
  for (const PipeAction& a : acts) {
    model.use_chunk(a.step.chunk);
    const bool act = a.step.forward;
    switch (a.kind) {
      case PipeAction::kCompute:
        (act ? forward : backward)(a.step.micro, a.slot);
        break;
      case PipeAction::kSend:
        pp.send(ctx, act ? model.output(a.slot) : model.output_grad(a.slot), a.peer);
        break;
      case PipeAction::kRecv:
        pp.recv(ctx, act ? model.input(b, t, a.slot) : model.output_grad(a.slot), a.peer);
        break;
    }
  }
  model.use_chunk(0);
}

// Every rank's actions for (P, V, M, forward_only), computed once per process: the schedule is a
// function of those four only, and a training step would otherwise run up to M simulations to find
// the slot count and one more to place the messages, every step.
struct Schedule {
  int64_t slots = 0;
  std::vector<std::vector<PipeAction>> acts;
};
const Schedule& schedule_for(int stages, int chunks, int64_t micro_batches, bool forward_only) {
  static std::map<std::tuple<int, int, int64_t, bool>, Schedule> cache;
  const auto key = std::make_tuple(stages, chunks, micro_batches, forward_only);
  auto it = cache.find(key);
  if (it == cache.end()) {
    Schedule s;
    s.slots = interleaved_slots(stages, chunks, micro_batches, forward_only);
    s.acts = interleaved_actions(stages, chunks, micro_batches, forward_only, s.slots);
    it = cache.emplace(key, std::move(s)).first;
  }
  return it->second;
}
}  // namespace

void run_interleaved(Model& model, Group& pp, int64_t micro_batches, int64_t b, int64_t t,
                     const MicroStep& forward, const MicroStep& backward) {
  const Schedule& s = schedule_for(pp.size(), int(model.chunks()), micro_batches, false);
  CS_CHECK(model.in_flight() >= s.slots)
      << model.in_flight() << " activation slots, the schedule needs " << s.slots;
  run_actions(model, pp, s.acts[size_t(pp.rank())], b, t, forward, backward);
}

void run_interleaved_forward_only(Model& model, Group& pp, int64_t micro_batches, int64_t b,
                                  int64_t t, const MicroStep& forward) {
  const Schedule& s = schedule_for(pp.size(), int(model.chunks()), micro_batches, true);
  CS_CHECK(model.in_flight() >= s.slots)
      << model.in_flight() << " activation slots, forward only needs " << s.slots;
  run_actions(model, pp, s.acts[size_t(pp.rank())], b, t, forward, {});
}

}  // namespace cs
