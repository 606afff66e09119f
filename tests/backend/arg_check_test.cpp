// Every op checks the dtype and device of every tensor argument and names the op and the argument
// in a cs::Error, on every backend of the build.
#include "backend_suite.h"

namespace cs {
namespace {

// ---------------------------------------------------------------------------------------------
// Argument checks: every op rejects a tensor of the wrong dtype or on another device with a
// cs::Error naming the op and the argument, before it touches memory.

CS_BACKEND_SUITE(ArgChecks);

// On the CPU operands and the output may be f32 or bf16 (bf16 GEMMs under --bf16); f16 is neither.
// (The CUDA backend takes f16 too: --fp16 computes in f16 there.)
TEST_P(ArgChecks, MatmulRejectsF16) {
  if (dev.backend().device() != Device::CPU) GTEST_SKIP() << "the CUDA backend takes f16 (--fp16)";
  Tensor a = dev.alloc({2, 4}), b = dev.alloc({4, 4}), c = dev.alloc({2, 4});
  Tensor a16 = dev.alloc({2, 4}, DType::F16), b16 = dev.alloc({4, 4}, DType::F16);
  EXPECT_TRUE(test::throws_error_naming([&] { ops().matmul(ctx(), a16, false, b, false, c, 1, 0); },
                                        {"[matmul]", " a:", "f16", "f32 or bf16"}));
  EXPECT_TRUE(test::throws_error_naming([&] { ops().matmul(ctx(), a, false, b16, false, c, 1, 0); },
                                        {"[matmul]", " b:", "f16"}));
  Tensor c16 = dev.alloc({2, 4}, DType::F16);
  EXPECT_TRUE(test::throws_error_naming([&] { ops().matmul(ctx(), a, false, b, false, c16, 1, 0); },
                                        {"[matmul]", " out:", "f16"}));
}

TEST_P(ArgChecks, EmbeddingRejectsF32Tokens) {
  Tensor tok = dev.alloc({2}), w = dev.alloc({5, 4}), out = dev.alloc({2, 4});
  EXPECT_TRUE(test::throws_error_naming([&] { ops().embedding_forward(ctx(), tok, w, 0, out); },
                                        {"[embedding_forward]", " tokens:", "i32", "f32"}));
  EXPECT_TRUE(test::throws_error_naming([&] { ops().embedding_backward(ctx(), tok, 0, out, w); },
                                        {"[embedding_backward]", " tokens:", "i32", "f32"}));
}

// Every tensor argument of every op, made wrong in dtype and then in device, one at a time.
TEST_P(ArgChecks, EveryOpChecksEveryArgumentsDtypeAndDevice) {
  const Device other = dev.backend().device() == Device::CPU ? Device::CUDA : Device::CPU;
  const int64_t n = 2, d = 4, v = 5, b = 1, h = 2, t = 3, hd = 4;
  const Shape heads{b, h, t, hd};
  Tensor x = dev.alloc({n, d}), y = dev.alloc({n, d}), w = dev.alloc({d}), r = dev.alloc({n});
  Tensor sq = dev.alloc({d, d}), emb = dev.alloc({v, d});
  Tensor tok = dev.upload(std::vector<int32_t>{1, 3}, {n});
  Tensor q = dev.alloc(heads), k = dev.alloc(heads), vv = dev.alloc(heads), o = dev.alloc(heads);
  Tensor lse = dev.alloc({b, h, t}), sl = dev.upload(std::vector<float>{0.5f, 0.25f}, {h});
  Tensor dq = dev.alloc(heads), dk = dev.alloc(heads), dv = dev.alloc(heads);
  Tensor tok3 = dev.alloc({b, t, 2 * h * hd}), kc = dev.alloc({b, h, 5, hd});
  Tensor vc = dev.alloc({b, h, 5, hd}), gu = dev.alloc({n, 2 * d}), z = dev.alloc({n, v});
  Tensor tgt = dev.upload(std::vector<int32_t>{1, -1}, {n}), s64 = dev.alloc({1}, DType::F64);
  Tensor half = dev.alloc({n, d}, DType::BF16);
  using Args = std::vector<Tensor>;
  struct Row {
    const char* op;
    std::vector<const char*> names;  // the op's tensor arguments, in order
    Args args;                       // valid values of them
    std::function<void(const Args&)> call;
  };
  Ctx& c = ctx();
  const Ops& ops = this->ops();
  const std::vector<Row> table = {
      {"matmul",
       {"a", "b", "out"},
       {x, sq, y},
       [&](const Args& a) { ops.matmul(c, a[0], false, a[1], false, a[2], 1, 0); }},
      {"embedding_forward",
       {"tokens", "weight", "out"},
       {tok, emb, x},
       [&](const Args& a) { ops.embedding_forward(c, a[0], a[1], 0, a[2]); }},
      {"embedding_backward",
       {"tokens", "dout", "dweight"},
       {tok, x, emb},
       [&](const Args& a) { ops.embedding_backward(c, a[0], 0, a[1], a[2]); }},
      {"rmsnorm_forward",
       {"x", "w", "y", "rstd"},
       {x, w, y, r},
       [&](const Args& a) { ops.rmsnorm_forward(c, a[0], a[1], 1e-6f, a[2], a[3]); }},
      {"rmsnorm_backward",
       {"x", "w", "rstd", "dy", "dx", "dw"},
       {x, w, r, y, x, w},
       [&](const Args& a) { ops.rmsnorm_backward(c, a[0], a[1], a[2], a[3], a[4], a[5], false); }},
      {"rope_apply", {"x"}, {q}, [&](const Args& a) { ops.rope_apply(c, a[0], 1e4f, 0, Tensor(nullptr, {0}), false); }},
      {"split_heads",
       {"x", "out"},
       {tok3, q},
       [&](const Args& a) { ops.split_heads(c, a[0], 0, a[1]); }},
      {"merge_heads",
       {"in", "x"},
       {q, tok3},
       [&](const Args& a) { ops.merge_heads(c, a[0], a[1], 0); }},
      {"attention_forward",
       {"q", "k", "v", "slopes", "o", "lse"},
       {q, k, vv, sl, o, lse},
       [&](const Args& a) { ops.attention_forward(c, a[0], a[1], a[2], a[3], Tensor(nullptr, {0}), a[4], a[5]); }},
      {"attention_backward",
       {"q", "k", "v", "slopes", "o", "lse", "dout", "dq", "dk", "dv"},
       {q, k, vv, sl, o, lse, o, dq, dk, dv},
       [&](const Args& a) {
         ops.attention_backward(c, a[0], a[1], a[2], a[3], Tensor(nullptr, {0}), a[4], a[5], a[6], a[7], a[8], a[9]);
       }},
      {"attention_decode",
       {"q", "k_cache", "v_cache", "slopes", "o"},
       {q, kc, vc, sl, o},
       [&](const Args& a) { ops.attention_decode(c, a[0], a[1], a[2], t, a[3], a[4]); }},
      {"kv_append",
       {"x", "cache"},
       {q, kc},
       [&](const Args& a) { ops.kv_append(c, a[0], a[1], 0); }},
      {"swiglu_forward",
       {"gu", "out"},
       {gu, x},
       [&](const Args& a) { ops.swiglu_forward(c, a[0], a[1]); }},
      {"swiglu_backward",
       {"gu", "dout", "dgu"},
       {gu, x, gu},
       [&](const Args& a) { ops.swiglu_backward(c, a[0], a[1], a[2]); }},
      {"cross_entropy_forward",
       {"logits", "targets", "lse", "target_logit"},
       {z, tgt, r, r},
       [&](const Args& a) { ops.cross_entropy_forward(c, a[0], a[1], 0, a[2], a[3]); }},
      {"cross_entropy_combine",
       {"lse_parts", "target_logit", "targets", "losses", "lse"},
       {r, r, tgt, r, r},
       [&](const Args& a) { ops.cross_entropy_combine(c, a[0], a[1], a[2], a[3], a[4]); }},
      {"cross_entropy_backward",
       {"logits", "lse", "targets", "dlogits"},
       {z, r, tgt, z},
       [&](const Args& a) { ops.cross_entropy_backward(c, a[0], a[1], a[2], 0, 1.f, a[3]); }},
      {"add_inplace", {"y", "x"}, {y, x}, [&](const Args& a) { ops.add_inplace(c, a[0], a[1]); }},
      {"scale", {"x"}, {x}, [&](const Args& a) { ops.scale(c, a[0], 2.f); }},
      {"cast", {"x", "y"}, {x, half}, [&](const Args& a) { ops.cast(c, a[0], a[1]); }},
      {"sum", {"x", "out"}, {x, s64}, [&](const Args& a) { ops.sum(c, a[0], a[1]); }},
      {"sum_squares",
       {"x", "out"},
       {x, s64},
       [&](const Args& a) { ops.sum_squares(c, a[0], a[1]); }},
      {"count_zeros",
       {"x", "out"},
       {x, s64},
       [&](const Args& a) { ops.count_zeros(c, a[0], a[1]); }},
      {"adamw_update",
       {"p", "g", "m", "v", "half"},
       {x, x, y, y, half},
       [&](const Args& a) { ops.adamw_update(c, a[0], a[1], a[2], a[3], 1e-3, 0.9, 0.95, 1e-8, 0.1, 1, 1.f, a[4]); }},
  };
  for (const Row& row : table) {
    ASSERT_EQ(row.names.size(), row.args.size()) << row.op;
    const std::string op = std::string("[") + row.op + "]";
    for (size_t i = 0; i < row.args.size(); ++i) {
      SCOPED_TRACE(op + " " + row.names[i]);
      const std::string arg = std::string(" ") + row.names[i] + ":";
      Args bad = row.args;
      // The wrong dtype: i64 for f32 (some f32 arguments take bf16 too, and f16 on CUDA: none takes
      // an integer) and, on the CPU, f16 (no CPU op takes it); f32 for i32 ids, for the F64 output
      // and for bf16. cast takes any float dtype; its pairs are tested in Cast.
      if (std::string(row.op) != "cast") {
        std::vector<DType> wrong = {DType::F32};
        if (row.args[i].dtype == DType::F32) {
          wrong = {DType::I64};
          if (dev.backend().device() == Device::CPU) wrong.push_back(DType::F16);
        }
        for (DType w : wrong) {
          bad[i].dtype = w;
          EXPECT_TRUE(test::throws_error_naming([&] { row.call(bad); }, {op, arg})) << dtype_name(w);
        }
      }
      bad[i] = row.args[i];
      bad[i].device = other;
      EXPECT_TRUE(test::throws_error_naming([&] { row.call(bad); }, {op, arg, device_name(other)}));
    }
  }
}


}  // namespace
}  // namespace cs
