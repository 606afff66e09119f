#include "checkpoint/native.h"

#include <fmt/core.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>

#include "checkpoint/megatron.h"
#include "checkpoint/safetensors_stream.h"
#include "core/file_io.h"

namespace cs {

namespace fs = std::filesystem;

std::string iteration_dir_name(int64_t iteration) { return fmt::format("iter_{:07d}", iteration); }

namespace {
// The iteration a folder name iter_XXXXXXX (seven digits or more, as iteration_dir_name writes it)
// stands for; -1 for any other name.
int64_t iteration_of_folder(const std::string& name) {
  if (name.size() < 12 || name.rfind("iter_", 0) != 0) return -1;
  int64_t it = 0;
  for (size_t i = 5; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9' || it > (int64_t(1) << 50)) return -1;
    it = it * 10 + (name[i] - '0');
  }
  return iteration_dir_name(it) == name ? it : -1;
}

// The complete checkpoints (meta.json written) under ROOT, oldest first, by iteration number (names
// sort differently from 10^7 on).
std::vector<int64_t> complete_iterations(const std::string& root) {
  std::vector<int64_t> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const int64_t it = iteration_of_folder(e.path().filename().string());
    if (it >= 0 && e.is_directory() && fs::exists(e.path() / "meta.json")) out.push_back(it);
  }
  std::sort(out.begin(), out.end());
  return out;
}
}  // namespace

std::string native_slice_metadata(const Shape& global, const std::vector<int64_t>& offset,
                                  const std::vector<RowBlock>& row_blocks) {
  nlohmann::json g = nlohmann::json::array();
  for (int i = 0; i < global.ndim; ++i) g.push_back(global[i]);
  nlohmann::json j = {{"global_shape", g}, {"offset", offset}};
  if (!row_blocks.empty()) {
    j["row_blocks"] = nlohmann::json::array();
    for (const RowBlock& b : row_blocks) j["row_blocks"].push_back({b.global_row, b.rows});
  }
  return j.dump();
}

CheckpointWriter::CheckpointWriter(std::string root, int64_t iteration) : CheckpointWriter(std::move(root), iteration, false) {}

CheckpointWriter CheckpointWriter::join(std::string root, int64_t iteration) {
  return CheckpointWriter(std::move(root), iteration, true);
}

CheckpointWriter::CheckpointWriter(std::string root, int64_t iteration, bool joining)
    : root_(std::move(root)), joining_(joining) {
  final_ = root_ + "/" + iteration_dir_name(iteration);
  tmp_ = final_ + ".tmp";
  if (joining_) {
    if (!fs::is_directory(tmp_))
      throw Error(fmt::format("[checkpoint] {} does not exist: rank 0 did not start this checkpoint", tmp_));
    return;
  }
  std::error_code ec;
  fs::remove_all(tmp_, ec);
  fs::create_directories(tmp_, ec);
  if (ec) throw Error(fmt::format("[checkpoint] cannot create {}: {}. Hint: check --save", tmp_, ec.message()));
}

CheckpointWriter::~CheckpointWriter() {
  if (!committed_ && !joining_) {
    std::error_code ec;
    fs::remove_all(tmp_, ec);
  }
}

void CheckpointWriter::add_shard(const std::string& file, const std::vector<ShardTensor>& tensors) {
  std::vector<NamedTensor> named;
  std::map<std::string, std::string> meta;
  for (const ShardTensor& t : tensors) {
    named.push_back({t.name, t.local});
    meta[t.name] = native_slice_metadata(t.global, t.offset, t.row_blocks);
  }
  meta["format"] = kNativeFormat;
  write_safetensors(tmp_ + "/" + file, named, meta);
}

void CheckpointWriter::commit(const nlohmann::json& meta, int keep_last) {
  CS_CHECK(!joining_) << "a joining checkpoint writer commits nothing";
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
  // Only this checkpoint and older ones count: a run resumed from an older iteration (--ckpt-step)
  // into its own folder finds the abandoned later ones there, which must not push its own out.
  const int64_t saved = iteration_of_folder(name);
  std::vector<int64_t> done;
  for (const int64_t it : complete_iterations(root_))
    if (it <= saved) done.push_back(it);
  for (size_t i = 0; i + size_t(keep_last) < done.size(); ++i) fs::remove_all(root_ + "/" + iteration_dir_name(done[i]), ec);
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

// DIR as one iteration folder of a native checkpoint (CKPT/iter_XXXXXXX, holding meta.json) is no
// checkpoint root and no Hugging Face directory: name the root rather than letting the Hugging
// Face reader ask for a config.json.
void check_not_an_iteration_folder(const std::string& dir) {
  std::error_code ec;
  fs::path d = fs::path(dir).lexically_normal();
  if (!d.has_filename()) d = d.parent_path();  // "run/iter_0000020/"
  if (!fs::is_regular_file(d / "meta.json", ec)) return;
  const std::string root = d.has_parent_path() ? d.parent_path().string() : ".";
  throw Error(fmt::format("[checkpoint] {}: one iteration folder of a native checkpoint; expected the checkpoint "
                          "root. Hint: {}", dir,
                          is_native_checkpoint(root)
                              ? fmt::format("pass {} (the folder holding latest_checkpointed_iteration.txt; it loads "
                                            "the iteration named there)", root)
                              : std::string("pass the folder that holds it and latest_checkpointed_iteration.txt")));
}

bool is_native_checkpoint(const std::string& dir) {
  // Megatron-LM's tracker has the same name; its iteration folders hold no meta.json.
  return fs::exists(dir + "/latest_checkpointed_iteration.txt") && !is_megatron_checkpoint(dir);
}

int64_t latest_iteration(const std::string& root) {
  const std::string path = root + "/latest_checkpointed_iteration.txt";
  require_regular_file(path, "checkpoint", "the latest file is a small text file written by chuanspeed train");
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

int64_t load_iteration(const std::string& root, int64_t step) {
  if (step < 0) return latest_iteration(root);
  if (fs::exists(root + "/" + iteration_dir_name(step) + "/meta.json")) return step;
  const std::vector<int64_t> held = complete_iterations(root);
  std::string list;
  for (const int64_t it : held) list += fmt::format("{}{}", list.empty() ? "" : ", ", it);
  throw Error(fmt::format("[checkpoint] --ckpt-step {}: {} holds no complete {}. Hint: its checkpoints are at "
                          "iteration{} {}", step, root, iteration_dir_name(step), held.size() == 1 ? "" : "s",
                          list.empty() ? "(none)" : list));
}

nlohmann::json CheckpointReader::read_meta(const std::string& root, int64_t iteration) {
  const std::string dir = root + "/" + iteration_dir_name(iteration);
  require_regular_file(dir + "/meta.json", "checkpoint", "meta.json is a file written by chuanspeed train");
  std::ifstream f(dir + "/meta.json");
  if (!f) throw Error(fmt::format("[checkpoint] {}/meta.json: cannot open", dir));
  nlohmann::json meta = nlohmann::json::parse(f, nullptr, false);
  if (meta.is_discarded() || !meta.is_object())
    throw Error(fmt::format("[checkpoint] {}/meta.json: not a JSON object", dir));
  return meta;
}

CheckpointReader::CheckpointReader(const std::string& root, int64_t iteration)
    : dir_(root + "/" + iteration_dir_name(iteration)), meta_(read_meta(root, iteration)) {
  std::vector<std::string> shards;
  for (const auto& e : fs::directory_iterator(dir_))
    if (e.path().extension() == ".safetensors") shards.push_back(e.path().string());
  std::sort(shards.begin(), shards.end());
  for (const std::string& p : shards) {
    files_.push_back(std::make_unique<SafetensorsFile>(p));
    for (const std::string& name : files_.back()->names()) pieces_.emplace(name, parse_piece(files_.size() - 1, name));
  }
}

// A piece's place in the global tensor, from the shard's metadata (none: the whole tensor),
// checked to lie inside the global shape so that read() can trust it.
CheckpointReader::Piece CheckpointReader::parse_piece(size_t file, const std::string& name) const {
  const SafetensorsFile& sf = *files_[file];
  const Shape local = sf.shape(name);
  Piece pc{file, local, 0, {{0, local.ndim ? local[0] : 1}}};
  auto it = sf.metadata().find(name);
  if (it == sf.metadata().end()) return pc;
  auto bad = [&](const std::string& what) {
    return Error(fmt::format("[checkpoint] {}: tensor {}: {}. Hint: the shard is corrupt or was not "
                             "written by chuanspeed; re-save or re-convert it", sf.path(), name, what));
  };
  const auto j = nlohmann::json::parse(it->second, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("global_shape") || !j.contains("offset"))
    throw bad("bad slice metadata (expected global_shape and offset)");
  std::vector<int64_t> g, off;
  try {
    g = j["global_shape"].get<std::vector<int64_t>>();
    off = j["offset"].get<std::vector<int64_t>>();
    pc.blocks.clear();
    if (j.contains("row_blocks"))
      for (const auto& b : j["row_blocks"]) pc.blocks.push_back({b.at(0).get<int64_t>(), b.at(1).get<int64_t>()});
  } catch (const nlohmann::json::exception&) {
    throw bad("bad slice metadata (global_shape, offset and row_blocks hold integers)");
  }
  if (local.ndim < 1 || local.ndim > 2 || int(g.size()) != local.ndim || int(off.size()) != local.ndim)
    throw bad(fmt::format("slice of shape {} with global shape of {} dims and offset of {} (expected 1 or 2 "
                          "dims everywhere)", local.str(), g.size(), off.size()));
  pc.global = Shape();
  for (int64_t x : g) {
    if (x < 0) throw bad(fmt::format("global shape {} has a negative size", nlohmann::json(g).dump()));
    pc.global.dims[size_t(pc.global.ndim++)] = x;
  }
  if (pc.blocks.empty()) pc.blocks.push_back({off[0], local[0]});
  // Every bound below is compared without a sum that could overflow (the values are the file's):
  // start <= size and count <= size - start, sizes and starts already known to be >= 0.
  int64_t rows = 0;
  for (const RowBlock& b : pc.blocks) {
    if (b.rows < 0 || b.global_row < 0 || b.global_row > pc.global[0] || b.rows > pc.global[0] - b.global_row)
      throw bad(fmt::format("{} rows from row {} lie outside the global shape {}", b.rows, b.global_row,
                            pc.global.str()));
    if (b.rows > local[0] - rows)
      throw bad(fmt::format("row blocks hold more rows than the slice's {}", local[0]));
    rows += b.rows;
  }
  if (rows != local[0]) throw bad(fmt::format("row blocks hold {} rows, the slice {}", rows, local[0]));
  if (local.ndim == 2) {
    pc.col = off[1];
    if (pc.col < 0 || pc.col > pc.global[1] || local[1] > pc.global[1] - pc.col)
      throw bad(fmt::format("{} columns from column {} lie outside the global shape {}", local[1], pc.col,
                            pc.global.str()));
  }
  return pc;
}

bool CheckpointReader::has(const std::string& name) const { return pieces_.count(name) > 0; }

int64_t CheckpointReader::stored_elements(const std::string& name) const {
  int64_t n = 0;
  auto range = pieces_.equal_range(name);
  for (auto it = range.first; it != range.second; ++it) n += files_[it->second.file]->shape(name).numel();
  return n;
}

std::vector<std::string> CheckpointReader::names() const {
  std::vector<std::string> out;
  for (const auto& [name, piece] : pieces_)
    if (out.empty() || out.back() != name) out.push_back(name);
  return out;
}

Shape CheckpointReader::global_shape(const std::string& name) const {
  auto it = pieces_.find(name);
  if (it == pieces_.end()) throw Error(fmt::format("[checkpoint] {}: no tensor {}", dir_, name));
  return it->second.global;
}

void CheckpointReader::read(const std::string& name, const std::vector<int64_t>& offset,
                            const Shape& local, float* dst) const {
  CS_CHECK(local.ndim >= 1 && local.ndim <= 2 && int(offset.size()) == local.ndim);
  const int64_t rows = local[0], cols = local.ndim == 2 ? local[1] : 1;
  const int64_t want_col = local.ndim == 2 ? offset[1] : 0;
  int64_t covered = 0;
  bool overlap = false;  // two pieces holding the same element: a count could hide a gap with it
  std::vector<std::array<int64_t, 4>> boxes;  // [r0, r1) x [c0, c1) read so far
  auto range = pieces_.equal_range(name);
  if (range.first == range.second) throw Error(fmt::format("[checkpoint] {}: no tensor {}", dir_, name));
  std::vector<float> buf;
  for (auto it = range.first; it != range.second; ++it) {
    const Piece& pc = it->second;
    const SafetensorsFile& sf = *files_[pc.file];
    const Shape ps = sf.shape(name);
    if (ps.ndim != local.ndim)
      throw Error(fmt::format("[checkpoint] {}: tensor {} has {} dims in {}, {} wanted", dir_, name, ps.ndim,
                              sf.path(), local.ndim));
    const int64_t pcols = ps.ndim == 2 ? ps[1] : 1;
    const int64_t c0 = std::max(want_col, pc.col), c1 = std::min(want_col + cols, pc.col + pcols);
    int64_t lrow = 0;  // the block's first row in the piece
    for (const RowBlock& b : pc.blocks) {
      // Overlap of the wanted box and this block, in global coordinates.
      const int64_t r0 = std::max(offset[0], b.global_row), r1 = std::min(offset[0] + rows, b.global_row + b.rows);
      if (r0 < r1 && c0 < c1) {
        const int64_t first = lrow + r0 - b.global_row;
        buf.resize(size_t((r1 - r0) * pcols));
        sf.read_f32_rows(name, first, first + (r1 - r0), buf.data());
        const size_t row_bytes = size_t(pcols) * dtype_size(sf.dtype(name));
        drop_mapped_pages(static_cast<const uint8_t*>(sf.tensor(name).data) + size_t(first) * row_bytes,
                          size_t(r1 - r0) * row_bytes);
        for (int64_t r = r0; r < r1; ++r)
          std::copy(buf.begin() + (r - r0) * pcols + (c0 - pc.col), buf.begin() + (r - r0) * pcols + (c1 - pc.col),
                    dst + (r - offset[0]) * cols + (c0 - want_col));
        covered += (r1 - r0) * (c1 - c0);
        for (const auto& bx : boxes)
          overlap |= r0 < bx[1] && bx[0] < r1 && c0 < bx[3] && bx[2] < c1;
        boxes.push_back({r0, r1, c0, c1});
      }
      lrow += b.rows;
    }
  }
  // Writers store each element once (replicated tensors from one rank), so pieces never overlap.
  if (covered != rows * cols || overlap)
    throw Error(fmt::format("[checkpoint] {}: the shards cover {} of the {} elements wanted of {}{}",
                            dir_, covered, rows * cols, name,
                            overlap ? " (overlapping shards)" : " (a shard is missing)"));
}

void CheckpointReader::read_all(const std::string& name, const Shape& expected, float* dst) const {
  const Shape g = global_shape(name);
  if (g != expected)
    throw Error(fmt::format("[checkpoint] {}: tensor {} has shape {}, expected {}. Hint: the checkpoint "
                            "is of another model size", dir_, name, g.str(), expected.str()));
  read(name, std::vector<int64_t>(size_t(g.ndim), 0), g, dst);
}

}  // namespace cs
