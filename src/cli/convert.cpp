// chuanspeed convert --input DIR --output DIR [--to native|hf] [--dtype fp32|bf16|fp16]
//                    [--max-shard-size 10GB] [--tokenizer-name-or-path TOK]
// Hugging Face directory <-> native checkpoint. Also takes the seed converter's flags
// (--input-model-dir, --output-model-dir, --type 7B|13B, --tensor-model-parallel-size,
// --pipeline-model-parallel-size, --pse, --merge-mlp).
#include <fmt/core.h>

#include "backend/backend.h"
#include "checkpoint/native.h"
#include "cli/commands.h"
#include "cli/parse.h"
#include "core/log.h"
#include "core/timer.h"
#include "train/checkpointing.h"
#include "train/hf_model.h"

namespace cs::cli {

namespace {
DType parse_dtype(const std::string& s) {
  if (s == "fp32" || s == "f32" || s == "float32") return DType::F32;
  if (s == "bf16" || s == "bfloat16") return DType::BF16;
  if (s == "fp16" || s == "f16" || s == "float16") return DType::F16;
  throw UsageError(fmt::format("--dtype {}: expected fp32, bf16 or fp16", s));
}

// The seed's --type must name the architecture the input actually has.
void check_type(const std::string& type, const ModelConfig& c) {
  if (type.empty()) return;
  const ModelConfig want = model_preset(type == "7B" ? "baichuan-7b" : "baichuan-13b");
  if (want.hidden_size != c.hidden_size || want.num_layers != c.num_layers || want.position != c.position)
    throw UsageError(fmt::format("--type {}: the input is {}, not Baichuan-{}", type, c.summary(), type));
}
}  // namespace

int convert_main(int argc, char** argv) {
  CLI::App app("Convert between Hugging Face directories and native checkpoints", "convert");
  std::string input, output, to, dtype = "fp32", shard = "10GB", tokenizer, type;
  int64_t tp = 1, pp = 1;
  app.add_option("--input,--input-model-dir", input, "a Hugging Face directory or a native checkpoint")->required();
  app.add_option("--output,--output-model-dir", output, "output directory")->required();
  app.add_option("--to", to, "native or hf (default: the other format)")->check(CLI::IsMember({"native", "hf"}));
  app.add_option("--dtype", dtype, "Hugging Face output dtype: fp32, bf16 or fp16");
  app.add_option("--max-shard-size", shard, "largest Hugging Face shard, e.g. 10GB");
  app.add_option("--tokenizer-name-or-path", tokenizer, "copy this tokenizer's files into a Hugging Face output");
  app.add_option("--type", type, "the seed converter's model type (checked)")->check(CLI::IsMember({"7B", "13B"}));
  app.add_option("--tensor-model-parallel-size", tp, "native output layout: TP size");
  app.add_option("--pipeline-model-parallel-size", pp, "native output layout: PP size");
  app.add_flag("--pse,--merge-mlp")->description("the seed converter's layout flags: always so here");
  int code = 0;
  if (!parse(app, argc, argv, code)) return code;
  if (tp != 1 || pp != 1)
    throw UsageError(fmt::format("--tensor-model-parallel-size {} / --pipeline-model-parallel-size {}: "
                                 "sharded native output arrives with the parallelism issue; convert "
                                 "with 1 and 1 (checkpoints load under any layout)", tp, pp));
  HfExportOptions opt;
  opt.dtype = parse_dtype(dtype);
  opt.max_shard_bytes = parse_byte_size(shard, "--max-shard-size");
  opt.tokenizer_dir = tokenizer;
  const bool from_native = is_native_checkpoint(input);
  if (to.empty()) to = from_native ? "hf" : "native";
  Timer t;
  SingleGroup tp_group("tp");
  std::unique_ptr<Model> model = load_model_weights(input, cpu_ops(), tp_group, 1, 1);
  check_type(type, model->config());
  if (to == "hf")
    save_hf_model(*model, output, opt);
  else
    save_model_checkpoint(output, *model);
  const double gb = double(model->params().numel()) * 4 / 1e9;
  std::printf("converted %s (%s) -> %s (%s): %lld tensors, %.3f GB fp32, %.2f s, %.2f GB/s\n", input.c_str(),
              from_native ? "native" : "hf", output.c_str(), to.c_str(),
              (long long)model->params().specs().size(), gb, t.seconds(), gb / std::max(t.seconds(), 1e-9));
  return 0;
}

}  // namespace cs::cli
