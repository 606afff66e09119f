// Finding a Megatron checkpoint's files. Layout facts: megatron/training/checkpointing.py
// (get_checkpoint_tracker_filename, read_metadata, get_checkpoint_name, generate_state_dict).
#include "checkpoint/megatron.h"

#include <fmt/core.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <regex>

#include "core/error.h"
#include "core/file_io.h"

namespace cs {

namespace fs = std::filesystem;

namespace {

constexpr const char* kTracker = "latest_checkpointed_iteration.txt";

// The folder the tracker names ("release" or iter_%07d), and whether it is a release; empty when
// the tracker is absent or does not hold a name Megatron writes.
std::string tracked_folder(const std::string& root, bool* release, int64_t* iteration) {
  const std::string path = root + "/" + kTracker;
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return "";
  std::ifstream f(path);
  std::string s;
  f >> s;
  *release = s == "release";
  *iteration = 0;
  if (*release) return root + "/release";
  if (s.empty() || s.size() > 12 || s.find_first_not_of("0123456789") != std::string::npos) return "";
  *iteration = std::stoll(s);
  return fmt::format("{}/iter_{:07d}", root, *iteration);
}

bool exists(const std::string& p) {
  std::error_code ec;
  return fs::exists(p, ec);
}

}  // namespace

bool is_megatron_checkpoint(const std::string& root) {
  bool release = false;
  int64_t it = 0;
  const std::string dir = tracked_folder(root, &release, &it);
  if (dir.empty() || exists(dir + "/meta.json")) return false;  // meta.json: a native iteration
  return exists(dir + "/mp_rank_00") || exists(dir + "/mp_rank_00_000") || exists(dir + "/.metadata") ||
         exists(dir + "/common.pt");
}

MegatronCheckpoint::MegatronCheckpoint(const std::string& root) {
  dir_ = tracked_folder(root, &release_, &iteration_);
  if (dir_.empty() || !exists(dir_))
    throw Error(fmt::format("[megatron] {}/{} names no iteration folder present. Hint: copy the checkpoint folder "
                            "complete (the tracker and the folder it names)", root, kTracker));
  if (exists(dir_ + "/.metadata") || exists(dir_ + "/common.pt"))
    throw Error(fmt::format("[megatron] {}: a Megatron distributed checkpoint (--ckpt-format torch_dist), which is not "
                            "read here. Hint: re-save it in Megatron's torch format (Megatron-LM: --ckpt-convert-format "
                            "torch --ckpt-convert-save DIR), then load DIR", dir_));
  // mp_rank_TT or mp_rank_TT_PPP; anything else under mp_rank_ (expert ranks) is refused.
  static const std::regex rank_re(R"(mp_rank_(\d{2})(?:_(\d{3}))?)");
  std::vector<std::pair<int, int>> found;
  bool with_pp = false, without_pp = false;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("mp_rank_", 0) != 0) continue;
    std::smatch m;
    if (!std::regex_match(n, m, rank_re))
      throw Error(fmt::format("[megatron] {}/{}: not a tensor/pipeline rank folder (mp_rank_TT or mp_rank_TT_PPP; "
                              "expert-parallel checkpoints are not read). Hint: a dense model's checkpoint is expected",
                              dir_, n));
    (m[2].matched ? with_pp : without_pp) = true;
    found.emplace_back(std::stoi(m[1]), m[2].matched ? std::stoi(m[2]) : 0);
  }
  if (found.empty() || (with_pp && without_pp))
    throw Error(fmt::format("[megatron] {}: {}. Hint: copy the checkpoint folder complete", dir_,
                            found.empty() ? "no mp_rank_* folders" : "both mp_rank_TT and mp_rank_TT_PPP folders"));
  for (const auto& [t, p] : found) {
    tp_ = std::max(tp_, t + 1);
    pp_ = std::max(pp_, p + 1);
  }
  if (int64_t(found.size()) != int64_t(tp_) * pp_)
    throw Error(fmt::format("[megatron] {}: {} rank folders for a {} x {} (tensor x pipeline) grid. Hint: a rank's "
                            "folder is missing; copy the checkpoint folder complete", dir_, found.size(), tp_, pp_));
  // Only the model's tensors: 'model' (or 'model0', 'model1', ... with virtual pipeline stages,
  // kept so that the caller can name them); an optimizer's and the RNG's are never checked.
  const auto keep = [](const std::string& n) {
    if (n.rfind("model.", 0) == 0) return true;
    size_t k = 5;
    while (k < n.size() && std::isdigit(static_cast<unsigned char>(n[k]))) ++k;
    return n.rfind("model", 0) == 0 && k > 5 && k < n.size() && n[k] == '.';
  };
  for (int p = 0; p < pp_; ++p)
    for (int t = 0; t < tp_; ++t) {
      const std::string folder = with_pp ? fmt::format("{}/mp_rank_{:02d}_{:03d}", dir_, t, p)
                                                    : fmt::format("{}/mp_rank_{:02d}", dir_, t);
      const std::string file = folder + "/model_optim_rng.pt";
      if (!exists(file))
        throw Error(fmt::format("[megatron] {}: missing. Hint: copy the checkpoint folder complete", file));
      require_regular_file(file, "megatron", "model_optim_rng.pt is a file written by torch.save");
      paths_.push_back(file);
      files_.push_back(std::make_unique<TorchBinFile>(file, keep));
    }
}

const TorchScalar* MegatronCheckpoint::scalar(const std::string& path) const {
  const auto& s = files_.front()->scalars();
  auto it = s.find(path);
  return it == s.end() ? nullptr : &it->second;
}

}  // namespace cs
