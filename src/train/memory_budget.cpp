// available_memory (MemAvailable and the cgroup's headroom) and the refusal of a plan that does not
// fit in it. Linux only; elsewhere the memory is unknown and nothing is refused here.
#include "train/memory_budget.h"

#include <fmt/core.h>
#include <omp.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace cs {

namespace {

// The first number after "KEY" on a line of PATH that starts with KEY (-1 when absent).
int64_t read_keyed(const std::string& path, const std::string& key) {
  std::ifstream f(path);
  for (std::string line; std::getline(f, line);)
    if (line.rfind(key, 0) == 0) {
      std::istringstream in(line.substr(key.size()));
      int64_t v = -1;
      if (in >> v) return v;
    }
  return -1;
}

// The single number in PATH (-1 when absent; "max", cgroup v2's "no limit", is -1 too).
int64_t read_number(const std::string& path) {
  std::ifstream f(path);
  int64_t v = -1;
  return f >> v ? v : -1;
}

}  // namespace

int64_t cgroup_headroom(const std::string& proc_cgroup, const std::string& cgroup_root, std::string& where) {
  std::ifstream f(proc_cgroup);
  int64_t best = -1;
  for (std::string line; std::getline(f, line);) {
    const size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1);
    const bool v2 = line.compare(0, a, "0") == 0 && controllers.empty();
    const bool v1 = (',' + controllers + ',').find(",memory,") != std::string::npos;
    if (!v1 && !v2) continue;
    const std::string base = v2 ? cgroup_root : cgroup_root + "/memory";
    for (std::string path = line.substr(b + 1);;) {  // "/a/b", then "/a", then "/"
      const std::string dir = base + (path == "/" ? "" : path);
      const int64_t limit = read_number(dir + (v2 ? "/memory.max" : "/memory.limit_in_bytes"));
      // v1 writes "no limit" as a number near 2^63, rounded to pages.
      if (limit > 0 && limit < (int64_t(1) << 62)) {
        const int64_t usage = read_number(dir + (v2 ? "/memory.current" : "/memory.usage_in_bytes"));
        const int64_t cache = read_keyed(dir + "/memory.stat", v2 ? "inactive_file " : "total_inactive_file ");
        const int64_t room = std::max<int64_t>(0, limit - std::max<int64_t>(usage, 0) + std::max<int64_t>(cache, 0));
        if (best < 0 || room < best) {
          best = room;
          where = "the memory cgroup limit of " + dir;
        }
      }
      if (path.empty() || path == "/") break;
      const size_t slash = path.rfind('/');
      path = slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
    }
  }
  return best;
}

namespace {

// The sizes a config is made of, spelt as where they came from.
std::string config_sizes(const ModelConfig& c, bool from_file) {
  return from_file ? fmt::format("vocab_size {}, hidden_size {}, intermediate_size {}, num_hidden_layers {}", c.vocab_size,
                                 c.hidden_size, c.ffn_hidden_size, c.num_layers)
                   : fmt::format("--vocab-size {} (padded), --hidden-size {}, --ffn-hidden-size {}, --num-layers {}",
                                 c.vocab_size, c.hidden_size, c.ffn_hidden_size, c.num_layers);
}

}  // namespace

std::string human_bytes(double bytes) {
  const double kib = 1024.0, mib = kib * 1024, gib = mib * 1024, tib = gib * 1024, pib = tib * 1024;
  if (bytes >= pib) return fmt::format("{:.2f} PiB", bytes / pib);
  if (bytes >= tib) return fmt::format("{:.2f} TiB", bytes / tib);
  if (bytes >= gib) return fmt::format("{:.2f} GiB", bytes / gib);
  if (bytes >= mib) return fmt::format("{:.1f} MiB", bytes / mib);
  if (bytes == 0) return "0";
  return fmt::format("{:.1f} KiB", bytes / kib);
}

AvailableMemory available_memory() {
  AvailableMemory m;
  const int64_t kb = read_keyed("/proc/meminfo", "MemAvailable:");
  if (kb < 0) return m;
  m.bytes = kb * 1024;
  m.source = "MemAvailable in /proc/meminfo";
  std::string where;
  const int64_t room = cgroup_headroom("/proc/self/cgroup", "/sys/fs/cgroup", where);
  if (room >= 0 && room < m.bytes) {
    m.bytes = room;
    m.source = where;
  }
  return m;
}

Plan memory_plan(const ModelConfig& c, const MemoryRequest& req) {
  ModelConfig planned = c;
  if (req.act_seq > 0) planned.max_seq_length = req.act_seq;
  PlanLayout l;
  if (req.bf16) l.precision = PlanPrecision::Bf16;
  l.tp = req.tp;
  l.pp = req.pp;
  l.virtual_layers = req.virtual_layers;
  l.world = req.dp * req.tp * req.pp;
  l.sequence_parallel = req.sequence_parallel;
  l.micro_batch = req.micro_batch;
  // The batch's own checks are the trainer's (in its words): here only its bytes count.
  int64_t per_step = 0;
  const bool whole = !__builtin_mul_overflow(req.micro_batch, req.dp, &per_step) && per_step > 0;
  l.global_batch = req.training && whole && req.global_batch % per_step == 0 ? req.global_batch : per_step;
  l.train_iters = req.train_iters;
  l.seq_length = planned.max_seq_length;
  l.distributed_optimizer = req.distributed_optimizer;
  l.training = req.training;
  l.cpu_threads = omp_get_max_threads();  // BLAS packing and thread stacks as this process will have them
  Plan p = make_plan(planned, l, PlanBackend::Cpu);
  if (req.kv_cache) {  // model/decoder.cpp: f32 K and V of (batch, heads, length, head dim) per layer
    const double kv = 2.0 * double(c.num_layers) * double(req.micro_batch) * double(l.seq_length) *
                      double(c.hidden_size) * 4;
    p.items.push_back({"KV cache", kv, "K and V of every layer, fp32"});
    p.peak_bytes += kv;
  }
  return p;
}

std::string memory_refusal(const ModelConfig& c, const MemoryRequest& req, const Plan& p,
                           const AvailableMemory& avail, int* exit_code) {
  if (avail.bytes < 0 || p.peak_bytes <= double(avail.bytes)) return "";
  double state = 0;  // what the model's size alone decides
  for (const PlanItem& it : p.items)
    if (it.name == "parameters" || it.name == "gradients" || it.name == "optimizer states") state += it.bytes;
  const std::string have = fmt::format("more than the {} this machine has available ({})",
                                       human_bytes(double(avail.bytes)), avail.source);
  const bool from_file = !req.config_file.empty();
  if (state > double(avail.bytes)) {
    if (exit_code) *exit_code = from_file ? 1 : 2;
    return fmt::format("[memory] {}: {} make a model of {:.4g} parameters, whose {} need {}, {}. Hint: {}",
                       from_file ? req.config_file : "the model's flags", config_sizes(c, from_file),
                       double(p.params_total),
                       req.training ? "parameters, gradients and Adam's state" : "parameters and gradients",
                       human_bytes(state), have,
                       from_file ? "check these sizes in " + req.config_file + " (is it this model's config?)"
                                 : "smaller sizes, or plan a larger machine's layout with chuanspeed plan");
  }
  if (exit_code) *exit_code = req.batch_exit;
  return fmt::format("[memory] {}: the activations and buffers need {} (of {} in all, the model's {} included), {}. "
                     "Hint: {}; chuanspeed plan shows where the memory goes", req.batch_source,
                     human_bytes(p.peak_bytes - state), human_bytes(p.peak_bytes), human_bytes(state), have,
                     req.batch_hint);
}

void check_memory(const ModelConfig& c, const MemoryRequest& req) {
  int code = 1;
  const std::string why = memory_refusal(c, req, memory_plan(c, req), available_memory(), &code);
  if (why.empty()) return;
  if (code == 2) throw UsageError(why);
  throw Error(why, code);
}

}  // namespace cs
