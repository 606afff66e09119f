#include "checkpoint/native.h"

#include <fmt/core.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "core/file_io.h"

namespace cs {

namespace fs = std::filesystem;

std::string iteration_dir_name(int64_t iteration) { return fmt::format("iter_{:07d}", iteration); }

namespace {

std::string shape_json(const Shape& s) {
  nlohmann::json j = nlohmann::json::array();
  for (int i = 0; i < s.ndim; ++i) j.push_back(s[i]);
  return j.dump();
}
}  // namespace

CheckpointWriter::CheckpointWriter(std::string root, int64_t iteration) : root_(std::move(root)) {
  final_ = root_ + "/" + iteration_dir_name(iteration);
  tmp_ = final_ + ".tmp";
  std::error_code ec;
  fs::remove_all(tmp_, ec);
  fs::create_directories(tmp_, ec);
  if (ec) throw Error(fmt::format("[checkpoint] cannot create {}: {}. Hint: check --save", tmp_, ec.message()));
}

CheckpointWriter::~CheckpointWriter() {
  if (!committed_) {
    std::error_code ec;
    fs::remove_all(tmp_, ec);
  }
}

void CheckpointWriter::add_shard(const std::string& file, const std::vector<ShardTensor>& tensors) {
  std::vector<NamedTensor> named;
  std::map<std::string, std::string> meta;
  for (const ShardTensor& t : tensors) {
    named.push_back({t.name, t.local});
    nlohmann::json j = {{"global_shape", nlohmann::json::parse(shape_json(t.global))}, {"offset", t.offset}};
    meta[t.name] = j.dump();
  }
  meta["format"] = "chuanspeed-native-1";
  write_safetensors(tmp_ + "/" + file, named, meta);
}

void CheckpointWriter::commit(const nlohmann::json& meta, int keep_last) {
  write_file_atomic(tmp_ + "/meta.json", meta.dump(2) + "\n", "checkpoint");
  std::error_code ec;
  fs::remove_all(final_, ec);  // an older checkpoint of the same iteration is replaced
  fs::rename(tmp_, final_, ec);
  if (ec) throw Error(fmt::format("[checkpoint] cannot rename {} to {}: {}", tmp_, final_, ec.message()));
  committed_ = true;
  // The latest file's AtomicFile commit fsyncs the root folder, which also makes the rename above
  // durable; until then a reader still finds the previous checkpoint.
  const std::string name = fs::path(final_).filename().string();
  write_file_atomic(root_ + "/latest_checkpointed_iteration.txt", name.substr(5) + "\n", "checkpoint");
  if (keep_last <= 0) return;
  std::vector<std::string> done;
  for (const auto& e : fs::directory_iterator(root_)) {
    const std::string n = e.path().filename().string();
    if (e.is_directory() && n.rfind("iter_", 0) == 0 && n.find(".tmp") == std::string::npos &&
        fs::exists(e.path() / "meta.json"))
      done.push_back(n);
  }
  std::sort(done.begin(), done.end());
  for (size_t i = 0; i + size_t(keep_last) < done.size(); ++i) fs::remove_all(root_ + "/" + done[i], ec);
}

std::vector<std::string> incomplete_checkpoints(const std::string& root) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const std::string n = e.path().filename().string();
    if (e.is_directory() && n.rfind("iter_", 0) == 0 && n.size() > 4 && n.substr(n.size() - 4) == ".tmp")
      out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool is_native_checkpoint(const std::string& dir) {
  return fs::exists(dir + "/latest_checkpointed_iteration.txt");
}

int64_t latest_iteration(const std::string& root) {
  const std::string path = root + "/latest_checkpointed_iteration.txt";
  std::ifstream f(path);
  if (!f) return -1;
  std::string s;
  f >> s;
  if (s == "release") return 0;
  int64_t it = -1;
  try {
    size_t used = 0;
    it = std::stoll(s, &used);
    if (used != s.size() || it < 0) throw std::invalid_argument(s);
  } catch (const std::exception&) {
    throw Error(fmt::format("[checkpoint] {}: '{}' is not an iteration number. Hint: the file holds "
                            "the number of the last complete checkpoint, e.g. 1000", path, s));
  }
  if (!fs::exists(root + "/" + iteration_dir_name(it) + "/meta.json"))
    throw Error(fmt::format("[checkpoint] {} names iteration {}, but {}/{} is missing or incomplete",
                            path, it, root, iteration_dir_name(it)));
  return it;
}

CheckpointReader::CheckpointReader(const std::string& root, int64_t iteration)
    : dir_(root + "/" + iteration_dir_name(iteration)) {
  std::ifstream f(dir_ + "/meta.json");
  if (!f) throw Error(fmt::format("[checkpoint] {}/meta.json: cannot open", dir_));
  meta_ = nlohmann::json::parse(f, nullptr, false);
  if (meta_.is_discarded()) throw Error(fmt::format("[checkpoint] {}/meta.json: not valid JSON", dir_));
  std::vector<std::string> shards;
  for (const auto& e : fs::directory_iterator(dir_))
    if (e.path().extension() == ".safetensors") shards.push_back(e.path().string());
  std::sort(shards.begin(), shards.end());
  for (const std::string& p : shards) {
    files_.push_back(std::make_unique<SafetensorsFile>(p));
    const SafetensorsFile& sf = *files_.back();
    for (const std::string& name : sf.names()) {
      Piece pc{files_.size() - 1, sf.shape(name), std::vector<int64_t>(size_t(sf.shape(name).ndim), 0)};
      auto it = sf.metadata().find(name);
      if (it != sf.metadata().end()) {
        const auto j = nlohmann::json::parse(it->second, nullptr, false);
        if (j.is_discarded() || !j.contains("global_shape") || !j.contains("offset"))
          throw Error(fmt::format("[checkpoint] {}: bad metadata for tensor {}", p, name));
        const auto g = j["global_shape"].get<std::vector<int64_t>>();
        pc.global = Shape();
        for (int64_t x : g) pc.global.dims[size_t(pc.global.ndim++)] = x;
        pc.offset = j["offset"].get<std::vector<int64_t>>();
      }
      pieces_.emplace(name, pc);
    }
  }
}

bool CheckpointReader::has(const std::string& name) const { return pieces_.count(name) > 0; }

Shape CheckpointReader::global_shape(const std::string& name) const {
  auto it = pieces_.find(name);
  if (it == pieces_.end()) throw Error(fmt::format("[checkpoint] {}: no tensor {}", dir_, name));
  return it->second.global;
}

void CheckpointReader::read(const std::string& name, const std::vector<int64_t>& offset,
                            const Shape& local, float* dst) const {
  CS_CHECK(local.ndim >= 1 && local.ndim <= 2 && int(offset.size()) == local.ndim);
  const int64_t rows = local[0], cols = local.ndim == 2 ? local[1] : 1;
  int64_t covered = 0;
  auto range = pieces_.equal_range(name);
  if (range.first == range.second) throw Error(fmt::format("[checkpoint] {}: no tensor {}", dir_, name));
  std::vector<float> buf;
  for (auto it = range.first; it != range.second; ++it) {
    const Piece& pc = it->second;
    const SafetensorsFile& sf = *files_[pc.file];
    const Shape ps = sf.shape(name);
    const int64_t prow = pc.offset[0], pcol = ps.ndim == 2 ? pc.offset[1] : 0;
    const int64_t pcols = ps.ndim == 2 ? ps[1] : 1;
    // Overlap of the wanted box and this piece, in global coordinates.
    const int64_t r0 = std::max(offset[0], prow), r1 = std::min(offset[0] + rows, prow + ps[0]);
    const int64_t c0 = std::max(local.ndim == 2 ? offset[1] : 0, pcol);
    const int64_t c1 = std::min((local.ndim == 2 ? offset[1] : 0) + cols, pcol + pcols);
    if (r0 >= r1 || c0 >= c1) continue;
    buf.resize(size_t((r1 - r0) * pcols));
    sf.read_f32_rows(name, r0 - prow, r1 - prow, buf.data());
    for (int64_t r = r0; r < r1; ++r)
      std::copy(buf.begin() + (r - r0) * pcols + (c0 - pcol), buf.begin() + (r - r0) * pcols + (c1 - pcol),
                dst + (r - offset[0]) * cols + (c0 - (local.ndim == 2 ? offset[1] : 0)));
    covered += (r1 - r0) * (c1 - c0);
  }
  // Writers store each element once (replicated tensors from one rank), so pieces never overlap.
  if (covered != rows * cols)
    throw Error(fmt::format("[checkpoint] {}: the shards cover {} of the {} elements wanted of {}{}",
                            dir_, covered, rows * cols, name,
                            covered > rows * cols ? " (overlapping shards)" : " (a shard is missing)"));
}

void CheckpointReader::read_all(const std::string& name, const Shape& expected, float* dst) const {
  const Shape g = global_shape(name);
  if (g != expected)
    throw Error(fmt::format("[checkpoint] {}: tensor {} has shape {}, expected {}. Hint: the checkpoint "
                            "is of another model size", dir_, name, g.str(), expected.str()));
  read(name, std::vector<int64_t>(size_t(g.ndim), 0), g, dst);
}

}  // namespace cs
