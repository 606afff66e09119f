// chuanspeed init --model PRESET [Megatron flags] [--seed S] --save DIR
// Writes a freshly initialised model (layout-invariant Philox init) as a Hugging Face directory:
// a starting point for fine-tuning experiments, and a fixture maker for tests.
#include "backend/backend.h"
#include "cli/commands.h"
#include "cli/parse.h"
#include "core/log.h"
#include "train/hf_model.h"
#include "train/memory_budget.h"

namespace cs::cli {

int init_main(int argc, char** argv) {
  CLI::App app("Write a freshly initialised model as a Hugging Face directory", "init");
  ModelFlags flags;
  flags.add_to(app);
  uint64_t seed = 1234;
  std::string save;
  app.add_option("--seed", seed, "random seed");
  app.add_option("--save", save, "output directory")->required();
  int code = 0;
  if (!parse(app, argc, argv, code)) return code;
  const ModelConfig cfg = flags.resolve();
  MemoryRequest req;  // the parameters (and ParamStore's gradients) of the flags' model, checked first
  req.act_seq = 1;
  req.batch_source = "--seq-length";
  check_memory(cfg, req);
  SingleGroup tp("tp");
  auto backend = make_backend("cpu");
  auto ctx = backend->make_context();
  Model model(cfg, *ctx, tp, 1, 1);
  model.params().init(*ctx, seed);
  save_hf_model(model, save);
  log_info("[init] {} -> {}", cfg.summary(), save);
  return 0;
}

}  // namespace cs::cli
