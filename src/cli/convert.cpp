// chuanspeed convert --input DIR --output DIR [--to native|hf] [--dtype fp32|bf16|fp16]
//                    [--max-shard-size 10GB] [--tokenizer-name-or-path TOK]
//                    [--tensor-model-parallel-size T --pipeline-model-parallel-size P]
//                    [--make-vocab-size-divisible-by K]
// Hugging Face directory <-> native checkpoint; a Megatron-LM checkpoint (torch format) -> either.
// Also takes AscendSpeed's converter's flags
// (--input-model-dir, --output-model-dir, --type 7B|13B, --tensor-model-parallel-size,
// --pipeline-model-parallel-size, --pse, --merge-mlp).
#include <fmt/core.h>

#include "cli/commands.h"
#include "cli/parse.h"
#include "core/timer.h"
#include "train/convert.h"
#include "train/hf_model.h"

namespace cs::cli {

namespace {
DType parse_dtype(const std::string& s) {
  if (s == "fp32" || s == "f32" || s == "float32") return DType::F32;
  if (s == "bf16" || s == "bfloat16") return DType::BF16;
  if (s == "fp16" || s == "f16" || s == "float16") return DType::F16;
  throw UsageError(fmt::format("--dtype {}: expected fp32, bf16 or fp16", s));
}
}  // namespace

int convert_main(int argc, char** argv) {
  CLI::App app("Convert between Hugging Face directories and native checkpoints (and from Megatron-LM checkpoints)",
               "convert");
  std::string dtype = "fp32", shard = "10GB";
  ConvertOptions o;
  app.add_option("--input,--input-model-dir", o.input,
                 "a Hugging Face directory, a native checkpoint or a Megatron-LM checkpoint (--ckpt-format torch)")->required();
  app.add_option("--output,--output-model-dir", o.output, "output directory")->required();
  app.add_option("--to", o.to, "native or hf (default: the other format)")->check(CLI::IsMember({"native", "hf"}));
  app.add_option("--dtype", dtype, "Hugging Face output dtype: fp32, bf16 or fp16");
  app.add_option("--max-shard-size", shard, "largest Hugging Face shard, e.g. 10GB");
  app.add_option("--tokenizer-name-or-path", o.tokenizer_dir, "copy this tokenizer's files into a Hugging Face output");
  app.add_option("--type", o.type, "AscendSpeed's converter's model type (checked)")->check(CLI::IsMember({"7B", "13B"}));
  app.add_option("--tensor-model-parallel-size", o.tp, "native output layout: TP size");
  app.add_option("--pipeline-model-parallel-size", o.pp, "native output layout: PP size");
  app.add_option("--make-vocab-size-divisible-by", o.divisible_by,
                 "pad the vocabulary to a multiple of this x the TP size, as train and Megatron do")
      ->check(CLI::PositiveNumber);
  app.add_flag("--pse,--merge-mlp")->description("AscendSpeed's converter's layout flags: always so here");
  int code = 0;
  if (!parse(app, argc, argv, code)) return code;
  o.dtype = parse_dtype(dtype);
  o.max_shard_bytes = parse_byte_size(shard, "--max-shard-size");
  const ConvertReport r = convert_checkpoint(o);
  std::printf("converted %s (%s) -> %s (%s, %lld file%s): %zu tensors, %.3f GB read, %.3f GB written, %.2f s, "
              "%.2f GB/s read, peak RSS %.0f MB\n",
              o.input.c_str(), r.from.c_str(), o.output.c_str(), r.to.c_str(), (long long)r.files,
              r.files == 1 ? "" : "s", r.tensors, double(r.bytes_read) / 1e9, double(r.bytes_written) / 1e9,
              r.seconds, double(r.bytes_read) / 1e9 / std::max(r.seconds, 1e-9), double(peak_rss_bytes()) / 1e6);
  return 0;
}

}  // namespace cs::cli
