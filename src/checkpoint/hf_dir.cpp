// HfWeights and load_named. The directory is validated as a whole when opened (config, index,
// shard contents agree), so a conversion fails before it writes anything. Messages are tagged
// "[load]" and name the directory or file, the tensor, and what was expected. Safetensors and
// torch .bin shards go through the same code, behind WeightFile.
#include "checkpoint/hf_dir.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <unordered_set>

#include "checkpoint/torch_bin.h"
#include "core/file_io.h"

namespace cs {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail(const std::string& where, const std::string& what, const std::string& hint) {
  throw Error("[load] " + where + ": " + what + ". Hint: " + hint);
}

std::string join(const std::string& dir, const std::string& file) {
  return (fs::path(dir) / file).string();
}

// Files in DIR whose names start with PREFIX and end with SUFFIX, sorted.
std::vector<std::string> list_files(const std::string& dir, const std::string& prefix,
                                    const std::string& suffix) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string n = e.path().filename().string();
    if (n.size() >= prefix.size() + suffix.size() && n.starts_with(prefix) && n.ends_with(suffix))
      out.push_back(n);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string first_few(const std::vector<std::string>& v, const std::string& quote = "") {
  std::string s;
  for (size_t i = 0; i < v.size() && i < 3; ++i) s += (i ? ", " : "") + quote + v[i] + quote;
  if (v.size() > 3) s += " (and " + std::to_string(v.size() - 3) + " more)";
  return s;
}

std::string read_text(const std::string& path) {
  require_regular_file(path, "load", "a Hugging Face directory holds config.json and the weights as files");
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (!in && !in.eof()) fail(path, "cannot read", "check the file's permissions");
  return ss.str();
}

// SafetensorsFile seen as a WeightFile.
class SafetensorsWeights : public WeightFile {
 public:
  explicit SafetensorsWeights(const std::string& path) : f_(path) {}
  const std::string& path() const override { return f_.path(); }
  const std::vector<std::string>& names() const override { return f_.names(); }
  bool has(const std::string& name) const override { return f_.has(name); }
  Shape shape(const std::string& name) const override { return f_.shape(name); }
  DType dtype(const std::string& name) const override { return f_.dtype(name); }
  Tensor tensor(const std::string& name) const override { return f_.tensor(name); }
  void read_f32(const std::string& name, float* dst, int64_t count) const override {
    f_.read_f32(name, dst, count);
  }
  void read_f32_rows(const std::string& name, int64_t row_begin, int64_t row_end,
                     float* dst) const override {
    f_.read_f32_rows(name, row_begin, row_end, dst);
  }

 private:
  SafetensorsFile f_;
};

}  // namespace

std::unique_ptr<WeightFile> open_weight_file(const std::string& path) {
  if (path.ends_with(".bin")) return std::make_unique<TorchBinFile>(path);
  return std::make_unique<SafetensorsWeights>(path);
}

HfWeights::HfWeights(const std::string& dir) : dir_(dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec))
    fail(dir, "directory not found", "pass the path to a Hugging Face model directory");
  if (!fs::is_directory(dir, ec))
    fail(dir, "not a directory", "pass the model directory, not a file inside it");

  const std::string config = join(dir, "config.json");
  if (!fs::exists(config, ec))
    fail(dir, "no config.json", "a Hugging Face model directory needs its config.json");
  try {
    config_ = nlohmann::json::parse(read_text(config));
  } catch (const nlohmann::json::exception& e) {
    fail(config, std::string("invalid JSON: ") + e.what(), "fix or re-download config.json");
  }
  if (!config_.is_object())
    fail(config, std::string("got a JSON ") + config_.type_name() + ", expected an object",
         "fix or re-download config.json");

  // Transformers' order of preference: safetensors first, then PyTorch pickles.
  const char* const kinds[] = {"model.safetensors", "model.safetensors.index.json",
                               "pytorch_model.bin", "pytorch_model.bin.index.json"};
  for (const char* kind : kinds) {
    const std::string file = join(dir, kind);
    if (!fs::exists(file, ec)) continue;
    if (std::string(kind).ends_with(".index.json")) open_index(file);
    else open_single(file);
    return;
  }
  std::vector<std::string> shards = list_files(dir, "", ".safetensors");
  std::vector<std::string> bins = list_files(dir, "pytorch_model", ".bin");
  shards.insert(shards.end(), bins.begin(), bins.end());
  fail(dir, "no model.safetensors, pytorch_model.bin or their index.json" +
                (shards.empty() ? std::string() : " (found " + first_few(shards) + ")"),
       shards.empty() ? "pass a Hugging Face model directory with safetensors or .bin weights"
                      : "a sharded checkpoint needs its model.safetensors.index.json or "
                        "pytorch_model.bin.index.json");
}

void HfWeights::open_single(const std::string& file) {
  files_.push_back(open_weight_file(file));
  names_ = files_[0]->names();
  for (const auto& n : names_) shard_of_[n] = 0;
}

void HfWeights::open_index(const std::string& index) {
  const std::string hint = "the index is corrupt or stale; re-download the checkpoint";
  nlohmann::ordered_json j;
  try {
    j = nlohmann::ordered_json::parse(read_text(index));
  } catch (const nlohmann::json::exception& e) {
    fail(index, std::string("invalid JSON: ") + e.what(), hint);
  }
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    fail(index, "no \"weight_map\" object", hint);
  const auto& map = j["weight_map"];
  if (map.empty()) fail(index, "\"weight_map\" is empty, expected at least one tensor", hint);

  std::map<std::string, size_t> file_index;  // shard file name -> index into files_
  for (const auto& [name, file] : map.items()) {
    if (!file.is_string() || file.get<std::string>().empty())
      fail(index, "weight_map entry for tensor '" + name + "': got " + file.dump() +
                      ", expected a shard file name", hint);
    const std::string shard = file.get<std::string>();
    if (shard.find('/') != std::string::npos || shard == "." || shard == "..")
      fail(index, "weight_map entry for tensor '" + name + "': got \"" + shard +
                      "\", expected a file name in the same directory", hint);
    auto it = file_index.find(shard);
    if (it == file_index.end()) {
      std::error_code ec;
      if (!fs::is_regular_file(join(dir_, shard), ec))
        fail(index, "shard " + shard + " (holding tensor '" + name + "') not found in " + dir_,
             "the download is incomplete; fetch every shard the index lists");
      it = file_index.emplace(shard, files_.size()).first;
      files_.push_back(open_weight_file(join(dir_, shard)));
    }
    if (!files_[it->second]->has(name))
      fail(index, "tensor '" + name + "' is mapped to " + shard + ", but " + shard +
                      " has no such tensor", hint);
    names_.push_back(name);
    shard_of_[name] = it->second;
  }
  // Every tensor a shard holds must be listed, and listed against that shard.
  for (const auto& [shard, i] : file_index)
    for (const auto& name : files_[i]->names()) {
      auto it = shard_of_.find(name);
      if (it == shard_of_.end())
        fail(index, "shard " + shard + " holds tensor '" + name + "', which weight_map does not list",
             hint);
      if (it->second != i)
        fail(index, "tensor '" + name + "' is in " + shard + " but weight_map maps it to " +
                        fs::path(files_[it->second]->path()).filename().string(), hint);
    }
}

const WeightFile& HfWeights::file_of(const std::string& name) const {
  auto it = shard_of_.find(name);
  if (it == shard_of_.end())
    fail(dir_, "no tensor named '" + name + "' in the checkpoint (" + std::to_string(names_.size()) +
                   " tensors)", "check that the checkpoint is a model of the expected kind");
  return *files_[it->second];
}

bool is_ignored_hf_buffer(const std::string& name) {
  return name.ends_with("rotary_emb.inv_freq");
}

void load_named(const HfWeights& w, const std::vector<ParamRef>& wanted) {
  for (const ParamRef& p : wanted) CS_CHECK(p.dst) << "null destination for " << p.name;
  check_named(w, wanted);
  for (const ParamRef& p : wanted) w.read_f32(p.name, p.dst, p.shape.numel());
}

void check_named(const HfWeights& w, const std::vector<ParamRef>& wanted) {
  const std::string hint = "check that config.json describes this checkpoint (layers, hidden size, vocab)";
  std::unordered_set<std::string> want;
  std::vector<std::string> missing;
  for (const ParamRef& p : wanted) {
    CS_CHECK(want.insert(p.name).second) << "parameter " << p.name << " wanted twice";
    if (!w.has(p.name)) {
      missing.push_back(p.name);
      continue;
    }
    Shape got = w.shape(p.name);
    if (got != p.shape)
      fail(w.dir(), "tensor '" + p.name + "' has shape got " + got.str() + ", expected " +
                        p.shape.str(), hint);
    if (!is_float_dtype(w.dtype(p.name)))
      fail(w.dir(), "tensor '" + p.name + "' has dtype got " + dtype_name(w.dtype(p.name)) +
                        ", expected F32, F64, F16 or BF16", "this tensor is not a float weight");
  }
  if (!missing.empty())
    fail(w.dir(), "missing tensor " + first_few(missing, "'") + " (" + std::to_string(missing.size()) +
                      " of " + std::to_string(wanted.size()) + " wanted tensors absent)", hint);
  std::vector<std::string> unexpected;
  for (const auto& name : w.names())
    if (!want.count(name) && !is_ignored_hf_buffer(name)) unexpected.push_back(name);
  if (!unexpected.empty())
    fail(w.dir(), "unexpected tensor " + first_few(unexpected, "'") + " (" +
                      std::to_string(unexpected.size()) + " tensors not used by the model)",
         "the checkpoint holds weights this model lacks; " + hint);
}

}  // namespace cs
