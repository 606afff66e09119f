// The benchmarks' instruments (bench/op_profile.h): the profiled op table wraps every op a
// training step calls, times nothing until enabled and then attributes each op to its family;
// the counting backend counts what a model allocates through its context.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "bench/op_profile.h"
#include "model/model.h"
#include "optim/adamw.h"

namespace cs {
namespace {

using bench::op_profile;

// The op table's entries after `name`, as raw pointer values (Ops is a name and function pointers).
std::vector<uintptr_t> entries(const Ops& ops) {
  static_assert((sizeof(Ops) - sizeof(const char*)) % sizeof(void (*)()) == 0);
  const size_t n = (sizeof(Ops) - sizeof(const char*)) / sizeof(void (*)());
  std::vector<uintptr_t> out(n);
  const auto* bytes = reinterpret_cast<const unsigned char*>(&ops) + sizeof(const char*);
  for (size_t i = 0; i < n; ++i) std::memcpy(&out[i], bytes + i * sizeof(void (*)()), sizeof(uintptr_t));
  return out;
}

TEST(OpProfile, WrapsEveryOpOfATrainingStep) {
  const Ops& base = cpu_backend().ops();
  const Ops prof = bench::profiled_ops(base);
  const auto b = entries(base), p = entries(prof);
  uintptr_t decode, append;
  std::memcpy(&decode, &base.attention_decode, sizeof decode);
  std::memcpy(&append, &base.kv_append, sizeof append);
  for (size_t i = 0; i < b.size(); ++i) {
    if (b[i] == decode || b[i] == append) {
      EXPECT_EQ(p[i], b[i]) << "entry " << i << ": generation's ops are not wrapped";
      continue;
    }
    EXPECT_NE(p[i], b[i]) << "entry " << i << " of Ops is not timed: add it to bench/op_profile.cpp";
  }
}

TEST(OpProfile, CountsAllocationsAndTimesFamiliesOnlyWhenEnabled) {
  bench::CountingBackend backend(make_backend("cpu"));
  auto owner = backend.make_context();
  EXPECT_EQ(&owner->backend, &backend) << "the counting backend's contexts must be its own";
  const Ops ops = bench::profiled_ops(backend.ops());
  auto ctx = bench::profiled_context(backend, *owner, ops);
  ModelConfig c = model_preset("tiny");
  SingleGroup tp;
  const int64_t mb = 2, seq = 16;
  {  // the model and its optimizer, freed at the end of the block
    Model model(c, *ctx, tp, mb, seq, ModelShard::whole(), Precision{});
    model.params().init(*ctx, 7);
    AdamW opt(model.params(), AdamWConfig{}, *ctx);
    EXPECT_GT(backend.held(), size_t(model.params().numel()) * 4) << "the parameters at least";
    EXPECT_GE(backend.peak(), backend.held());
    std::vector<int32_t> tokens(size_t(mb * seq)), targets(tokens.size());
    for (size_t i = 0; i < tokens.size(); ++i) {
      tokens[i] = int32_t(i * 7 % size_t(c.vocab_size));
      targets[i] = int32_t(i * 13 % size_t(c.vocab_size));
    }
    auto step = [&] {
      model.zero_grad();
      model.forward(tokens.data(), targets.data(), mb, seq);
      model.backward();
      opt.step(model.params(), 1e-3);
    };
    op_profile() = {};
    step();
    for (double s : op_profile().seconds) EXPECT_EQ(s, 0.0) << "timed while disabled";
    op_profile().enabled = true;
    step();
    op_profile().enabled = false;
    for (int f = 0; f < bench::kFamilies; ++f) EXPECT_GT(op_profile().seconds[f], 0.0) << "family " << f;
  }
  EXPECT_EQ(backend.held(), 0u) << "the model's and the optimizer's buffers are freed";
  EXPECT_GT(backend.peak(), 0u);
}

}  // namespace
}  // namespace cs
