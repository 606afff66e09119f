#include "train/convert.h"

#include <fmt/core.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <regex>

#include "checkpoint/megatron.h"
#include "checkpoint/native.h"
#include "checkpoint/safetensors_stream.h"
#include "core/error.h"
#include "core/half.h"
#include "core/log.h"
#include "core/timer.h"
#include "train/checkpointing.h"
#include "train/hf_model.h"
#include "train/shard_layout.h"
#include "train/weight_source.h"

namespace cs {

namespace {

// One output file: its header, known before the first byte, and its writer while it is open.
struct OutFile {
  std::string path;
  std::vector<TensorEntry> entries;
  std::map<std::string, std::string> metadata;
  std::unique_ptr<SafetensorsStreamWriter> writer;
  bool done = false;
};

// Where one parameter (or a rank's slice of it) goes: a file, the global columns [col0, col0 +
// cols) and the blocks of global rows the slice holds, in file order.
struct Placement {
  size_t file = 0;
  int64_t col0 = 0, cols = 0;
  std::vector<RowBlock> blocks;
};

struct OutputPlan {
  DType dtype = DType::F32;
  std::vector<OutFile> files;
  std::vector<std::vector<Placement>> of_spec;  // per parameter, in spec order
};

int64_t width(const Shape& s) { return s.ndim == 2 ? s[1] : 1; }

// Hugging Face output: parameters in order, whole, in shards of at most max_shard_bytes.
OutputPlan plan_hf(const std::vector<ParamSpec>& specs, const std::string& dir, DType dtype, int64_t max_bytes) {
  OutputPlan p;
  p.dtype = dtype;
  p.of_spec.resize(specs.size());
  const auto groups = hf_shard_groups(specs, dtype, max_bytes);
  for (size_t k = 0; k < groups.size(); ++k) {
    OutFile f;
    f.path = dir + "/" + hf_shard_file(k, groups.size());
    f.metadata = {{"format", "pt"}};
    for (size_t i : groups[k]) {
      f.entries.push_back({specs[i].name, dtype, specs[i].shape});
      p.of_spec[i].push_back({k, 0, width(specs[i].shape), {{0, specs[i].shape[0]}}});
    }
    p.files.push_back(std::move(f));
  }
  return p;
}

// Native output: one fp32 shard per (TP rank, PP stage); each holds its stage's parameters'
// TP slices, replicated ones on TP rank 0 only (every element is stored once).
OutputPlan plan_native(const std::vector<ParamSpec>& specs, const ModelConfig& cfg, const CheckpointWriter& w,
                 int64_t tp, int64_t pp) {
  OutputPlan p;
  p.of_spec.resize(specs.size());
  for (int64_t stage = 0; stage < pp; ++stage)
    for (int64_t rank = 0; rank < tp; ++rank) {
      OutFile f;
      f.path = w.shard_path(model_shard_name(rank, stage));
      f.metadata = {{"format", kNativeFormat}};
      for (size_t i = 0; i < specs.size(); ++i) {
        const ParamSpec& s = specs[i];
        if (pipeline_stage(s, cfg, pp) != stage || (s.split == TpSplit::None && rank > 0)) continue;
        const TpSlice sl = tp_slice(s, cfg, tp, rank);
        f.entries.push_back({s.name, DType::F32, sl.local});
        f.metadata[s.name] = native_slice_metadata(s.shape, sl.offset, sl.row_blocks);
        Placement pl{p.files.size(), sl.local.ndim == 2 ? sl.offset[1] : 0, width(sl.local), sl.row_blocks};
        if (pl.blocks.empty()) pl.blocks.push_back({sl.offset[0], sl.local[0]});
        p.of_spec[i].push_back(std::move(pl));
      }
      p.files.push_back(std::move(f));
    }
  return p;
}

// N floats to dtype t (BF16 or F16, round to nearest even) at dst.
void convert_from_f32(const float* src, int64_t n, DType t, uint8_t* dst) {
  uint16_t* o = reinterpret_cast<uint16_t*>(dst);
#pragma omp parallel for if (n > (1 << 18))
  for (int64_t i = 0; i < n; ++i) o[i] = t == DType::BF16 ? f32_to_bf16(src[i]) : f32_to_f16(src[i]);
}

// Appends rows [r0, r1) of a parameter (full width `w`, fp32 at src) to each of its placements.
void scatter(const float* src, int64_t r0, int64_t r1, int64_t w, const std::vector<Placement>& places,
             OutputPlan& plan, std::vector<float>& cut, std::vector<uint8_t>& out) {
  for (const Placement& pl : places) {
    OutFile& f = plan.files[pl.file];
    for (const RowBlock& b : pl.blocks) {  // ascending global rows, so file order is kept
      const int64_t a = std::max(r0, b.global_row), e = std::min(r1, b.global_row + b.rows);
      if (a >= e) continue;  // this chunk holds none of the slice (a vocab-parallel rank, say)
      CS_CHECK(!f.done) << f.path << " written again";
      if (!f.writer) f.writer = std::make_unique<SafetensorsStreamWriter>(f.path, f.entries, f.metadata);
      const int64_t n = (e - a) * pl.cols;
      const float* rows = src + (a - r0) * w;
      if (pl.cols != w) {  // a column slice (row-parallel): gather it first
        cut.resize(size_t(n));
        for (int64_t r = 0; r < e - a; ++r)
          std::copy(rows + r * w + pl.col0, rows + r * w + pl.col0 + pl.cols, cut.begin() + r * pl.cols);
        rows = cut.data();
      }
      if (plan.dtype == DType::F32) {  // native output: the fp32 rows as they are
        f.writer->append(rows, size_t(n) * 4);
        continue;
      }
      out.resize(size_t(n) * dtype_size(plan.dtype));
      convert_from_f32(rows, n, plan.dtype, out.data());
      f.writer->append(out.data(), out.size());
    }
    if (f.writer && f.writer->remaining() == 0) {
      f.writer->commit();
      f.writer.reset();
      f.done = true;
    }
  }
}

std::string group_name(int layer, int64_t layers) {
  if (layer == -1) return "embedding";
  if (layer == -2) return "final norm + lm_head";
  return fmt::format("layer {}/{}", layer + 1, layers);
}

// Streams every parameter from src (specs: the input's shapes) into the plan's files (out_specs:
// the output's; a padded vocabulary has more rows, each a copy of the input's last row), with a
// progress line per group.
void stream(const WeightSource& src, const std::vector<ParamSpec>& specs, const std::vector<ParamSpec>& out_specs,
            OutputPlan& plan, int64_t total_read, int64_t chunk_bytes, ConvertReport& rep) {
  Timer t;
  std::vector<float> in, cut, last;
  std::vector<uint8_t> out;
  for (size_t i = 0; i < specs.size(); ++i) {
    const ParamSpec& s = specs[i];
    const int64_t w = width(s.shape), have = s.shape[0], rows = out_specs[i].shape[0];
    const int64_t step = std::max<int64_t>(1, chunk_bytes / 4 / std::max<int64_t>(w, 1));
    if (rows > have) {
      last.resize(size_t(w));
      src.read_rows(s, have - 1, have, last.data());
    }
    for (int64_t r0 = 0; r0 < rows; r0 += step) {
      const int64_t r1 = std::min(rows, r0 + step), stored = std::clamp<int64_t>(have - r0, 0, r1 - r0);
      in.resize(size_t((r1 - r0) * w));
      if (stored > 0) src.read_rows(s, r0, r0 + stored, in.data());
      for (int64_t r = stored; r < r1 - r0; ++r) std::copy(last.begin(), last.end(), in.begin() + r * w);
      scatter(in.data(), r0, r1, w, plan.of_spec[i], plan, cut, out);
    }
    rep.bytes_read += src.stored_bytes(s);
    if (i + 1 == specs.size() || specs[i + 1].layer != s.layer)
      log_info("[convert] {} done: {:.2f} of {:.2f} GB read, {:.2f} GB/s", group_name(s.layer, src.config().num_layers),
               double(rep.bytes_read) / 1e9, double(total_read) / 1e9,
               double(rep.bytes_read) / 1e9 / std::max(t.seconds(), 1e-9));
  }
  for (const OutFile& f : plan.files) {
    CS_CHECK(f.done || f.entries.empty()) << f.path << " left incomplete";
    for (const TensorEntry& e : f.entries) rep.bytes_written += int64_t(e.nbytes());
  }
  rep.files = plan.files.size();
}

// AscendSpeed's converter's --type must name the architecture the input actually has.
void check_type(const std::string& type, const ModelConfig& c) {
  if (type.empty()) return;
  const ModelConfig want = model_preset(type == "7B" ? "baichuan-7b" : "baichuan-13b");
  if (want.hidden_size != c.hidden_size || want.num_layers != c.num_layers || want.position != c.position)
    throw UsageError(fmt::format("--type {}: the input is {}, not Baichuan-{}", type, c.summary(), type));
}

// A Hugging Face output directory holding an earlier conversion: its config.json goes first, so a
// conversion that fails from here on leaves nothing that looks loadable, and its safetensors
// weights too, since loaders take a stale model.safetensors over a new index (and an index over
// nothing) and would load the old weights without a word. Converting a directory onto itself
// would delete the input: refused.
void clear_previous_hf_output(const std::string& input, const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::equivalent(input, dir, ec))
    throw UsageError(fmt::format("--output {}: is the input directory. Hint: write the converted model to "
                                 "another directory", dir));
  const std::regex shard(R"(model-\d{5}-of-\d{5}\.safetensors)");
  std::vector<std::string> stale = {"config.json"};  // first
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n == "model.safetensors" || n == "model.safetensors.index.json" || std::regex_match(n, shard))
      stale.push_back(n);
  }
  for (const std::string& n : stale)
    if (!fs::remove(dir + "/" + n, ec) && ec)
      throw Error(fmt::format("[convert] cannot remove {}/{} of an earlier conversion: {}. Hint: check --output's "
                              "permissions, or write to an empty directory", dir, n, ec.message()));
}

}  // namespace

ConvertReport convert_checkpoint(const ConvertOptions& o) {
  Timer t;
  std::unique_ptr<WeightSource> src = WeightSource::open(o.input);
  ConvertReport rep;
  rep.from = src->kind();
  rep.to = !o.to.empty() ? o.to : rep.from == "native" ? "hf" : "native";
  rep.config = src->config();
  check_type(o.type, rep.config);
  if (rep.to == "hf" && (o.tp != 1 || o.pp != 1))
    throw UsageError(fmt::format("--tensor-model-parallel-size {} / --pipeline-model-parallel-size {}: a Hugging "
                                 "Face directory is not sharded by layout. Hint: use them with --to native",
                                 o.tp, o.pp));
  if (rep.to == "native" && o.dtype != DType::F32)
    throw UsageError(fmt::format("--dtype {}: a native checkpoint is always fp32 (it is the training state). "
                                 "Hint: drop --dtype, or pass --to hf for a {} Hugging Face directory",
                                 dtype_name(o.dtype), dtype_name(o.dtype)));
  // Conversion streams, so the model's size needs no memory; but param_specs makes one spec per
  // tensor, 7 per layer, before check() can name a missing one: a num_hidden_layers of 1e9 would
  // take gigabytes of specs first. A config asking for far more tensors than the files hold (a
  // thousand layers' worth) is refused by count; a nearer mismatch is left to check()'s message.
  constexpr int64_t kSlack = 7 * 1000;
  const int64_t wanted = 7 * rep.config.num_layers + 3;  // param_specs: 7 per layer, embedding, norm, head
  if (wanted > src->stored_tensors() + kSlack)
    throw Error(fmt::format("[convert] {}: num_hidden_layers {} means {} tensors, but the weights hold {}. Hint: the "
                            "config does not describe these weights (a mistyped size?)", src->config_file(),
                            rep.config.num_layers, wanted, src->stored_tensors()));
  const std::vector<ParamSpec> specs = param_specs(rep.config);
  src->check(specs);
  if (o.divisible_by > 0) {
    const int64_t padded = padded_vocab_size(rep.config.vocab_size, o.divisible_by, o.tp);
    if (padded != rep.config.vocab_size)
      log_info("[convert] vocabulary {} padded to {} (--make-vocab-size-divisible-by {} x TP {}): the new rows of the "
               "embedding and lm_head copy the last row", rep.config.vocab_size, padded, o.divisible_by, o.tp);
    rep.config.vocab_size = padded;
  }
  check_parallel_layout(rep.config, o.tp, o.pp);
  const std::vector<ParamSpec> out_specs = param_specs(rep.config);
  rep.tensors = specs.size();
  int64_t total = 0;
  for (const ParamSpec& s : specs) total += src->stored_bytes(s);
  log_info("[convert] {} ({}) -> {} ({}): {}; {} tensors, {:.2f} GB", o.input, rep.from, o.output, rep.to,
           rep.config.summary(), specs.size(), double(total) / 1e9);
  if (rep.to == "native") {
    // A checkpoint root already there (a training run's, or an earlier conversion) would get its
    // latest file pointed at this iteration-0 weights-only checkpoint, and a later --load would
    // resume from it: refused, as is converting a checkpoint onto itself.
    if (is_native_checkpoint(o.output) || is_megatron_checkpoint(o.output))
      throw UsageError(fmt::format("--output {}: already holds a {} checkpoint. Hint: convert into a new "
                                   "directory (a checkpoint folder is never overwritten)", o.output,
                                   is_megatron_checkpoint(o.output) ? "Megatron-LM" : "native"));
    CheckpointWriter w(o.output, 0);
    OutputPlan plan = plan_native(out_specs, rep.config, w, o.tp, o.pp);
    stream(*src, specs, out_specs, plan, total, o.chunk_bytes, rep);
    w.commit(checkpoint_meta(rep.config, TrainingState{}, o.tp, o.pp));
  } else {
    std::error_code ec;
    std::filesystem::create_directories(o.output, ec);
    if (ec) throw Error(fmt::format("[convert] cannot create {}: {}. Hint: check --output", o.output, ec.message()));
    clear_previous_hf_output(o.input, o.output);
    OutputPlan plan = plan_hf(out_specs, o.output, o.dtype, o.max_shard_bytes);
    try {
      stream(*src, specs, out_specs, plan, total, o.chunk_bytes, rep);
      // config.json last: a conversion that failed half-way does not leave a loadable-looking directory.
      write_hf_index(o.output, out_specs, hf_shard_groups(out_specs, o.dtype, o.max_shard_bytes), o.dtype);
      copy_tokenizer_files(o.tokenizer_dir, o.output);
      write_hf_config(o.output, rep.config, o.dtype);
    } catch (...) {
      // The shards completed before the failure go too (the one in progress removes its own .tmp):
      // a failed conversion leaves --output as it found it, less the earlier conversion cleared above.
      std::error_code ec;
      for (const OutFile& f : plan.files)
        if (f.done) std::filesystem::remove(f.path, ec);
      std::filesystem::remove(o.output + "/model.safetensors.index.json", ec);
      throw;
    }
  }
  rep.seconds = t.seconds();
  return rep;
}

}  // namespace cs
