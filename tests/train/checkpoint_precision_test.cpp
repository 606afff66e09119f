// Checkpoints of a run whose parameters are a bf16 compute copy: the file holds the f32 master
// weights (not the rounded copy), a resume restores them exactly and casts them into the
// parameters; a weights-only load (no optimizer) rounds the f32 weights into the parameters.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "backend/host_copy.h"
#include "core/half.h"
#include "device_env.h"
#include "train/checkpointing.h"

namespace cs {
namespace {

std::vector<uint16_t> halves(Ctx& ctx, const Tensor& t) {
  std::vector<uint16_t> v(size_t(t.numel()));
  ctx.backend.download(ctx, t, v.data());
  return v;
}

TEST(CheckpointPrecision, Bf16ParametersSaveAndRestoreTheF32MasterWeights) {
  const std::string root = ::testing::TempDir() + "/cs_ckpt_bf16_" + std::to_string(getpid());
  std::filesystem::remove_all(root);
  test::DeviceEnv env;
  SingleGroup tp("tp");
  const ModelConfig c = model_preset("tiny");
  const Precision bf16{DType::BF16, DType::F32, DType::F32};
  Model a(c, *env, tp, 1, 4, ModelShard::whole(), bf16);
  a.params().init(*env, 9);
  AdamW adam_a(a.params(), {}, *env);
  // Master weights that bf16 cannot hold exactly: what must survive the checkpoint.
  std::vector<float> master = read_f32(*env, adam_a.gather(a.params()).master);
  for (size_t i = 0; i < master.size(); ++i) master[i] += 1e-5f * float(i % 7);
  env.backend->upload(*env, master.data(), adam_a.gather(a.params()).master);
  env.ctx->ops.cast(*env, adam_a.gather(a.params()).master, a.params().flat_params());
  LossScaler scaler(false, 1, 1000, 2, 1);
  TrainingState st;
  st.iteration = 3;
  save_training_checkpoint(root, st, a, adam_a, scaler, 0);

  Model b(c, *env, tp, 1, 4, ModelShard::whole(), bf16);
  AdamW adam_b(b.params(), {}, *env);
  EXPECT_EQ(load_training_checkpoint(root, b, &adam_b, nullptr).iteration, 3);
  EXPECT_EQ(read_f32(*env, adam_b.gather(b.params()).master), master);
  EXPECT_EQ(halves(*env, b.params().flat_params()), halves(*env, a.params().flat_params()));

  Model w(c, *env, tp, 1, 4, ModelShard::whole(), bf16);  // weights only
  load_training_checkpoint(root, w, nullptr, nullptr);
  const std::vector<uint16_t> got = halves(*env, w.params().flat_params());
  for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], f32_to_bf16(master[i])) << i;
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace cs
