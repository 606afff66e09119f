// The native checkpoint (DESIGN §5): CKPT/iter_XXXXXXX/ with meta.json and per-rank safetensors
// shards whose __metadata__ gives each tensor's global shape and offset, plus
// CKPT/latest_checkpointed_iteration.txt. Written into iter_XXXXXXX.tmp/, fsynced, renamed, then
// the latest file replaced atomically; a crash at any point leaves the previous checkpoint
// loadable. Reading is layout-free: a slice is assembled from whichever shards overlap it.
// Knows nothing of models: tensors are names, shapes and offsets.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "checkpoint/safetensors.h"

namespace cs {

// A rank's piece of a tensor: `local` holds the box [offset, offset + local.shape) of a tensor of
// shape `global` (1-D or 2-D).
struct ShardTensor {
  std::string name;
  Tensor local;
  Shape global;
  std::vector<int64_t> offset;
};

// "iter_0001000"
std::string iteration_dir_name(int64_t iteration);

class CheckpointWriter {
 public:
  // Starts CKPT/iter_XXXXXXX.tmp/ (removing a stale one left by a crash).
  CheckpointWriter(std::string root, int64_t iteration);
  ~CheckpointWriter();  // an uncommitted checkpoint's .tmp folder is removed
  // Writes one shard file (e.g. "model-tp00-pp000.safetensors") into the checkpoint.
  void add_shard(const std::string& file, const std::vector<ShardTensor>& tensors);
  // Writes meta.json, renames the folder into place, replaces the latest file, and with
  // keep_last > 0 removes all but the newest keep_last complete checkpoints.
  void commit(const nlohmann::json& meta, int keep_last = 0);

 private:
  std::string root_, final_, tmp_;
  bool committed_ = false;
};

// The iteration named by CKPT/latest_checkpointed_iteration.txt ("release" reads as 0), or -1
// when the folder holds no checkpoint. A latest file naming a missing folder is a cs::Error.
int64_t latest_iteration(const std::string& root);

// Folders under ROOT left by a write that never completed (iter_XXXXXXX.tmp): ignored by readers.
std::vector<std::string> incomplete_checkpoints(const std::string& root);

// Whether DIR looks like a native checkpoint root (has the latest file).
bool is_native_checkpoint(const std::string& dir);

class CheckpointReader {
 public:
  // Opens CKPT/iter_XXXXXXX/ (meta.json and every *.safetensors shard in it).
  CheckpointReader(const std::string& root, int64_t iteration);
  const nlohmann::json& meta() const { return meta_; }
  const std::string& dir() const { return dir_; }
  // Whether any shard holds a piece of this tensor.
  bool has(const std::string& name) const;
  // The tensor's global shape (from the shards' metadata).
  Shape global_shape(const std::string& name) const;
  // Fills dst (shape `local`, the box at `offset` of the global tensor) from whichever shards
  // overlap it; every element must be covered (an error naming the tensor otherwise).
  void read(const std::string& name, const std::vector<int64_t>& offset, const Shape& local,
            float* dst) const;
  // Convenience: the whole tensor.
  void read_all(const std::string& name, const Shape& expected, float* dst) const;

 private:
  struct Piece {
    size_t file;
    Shape global;
    std::vector<int64_t> offset;
  };
  std::string dir_;
  nlohmann::json meta_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::multimap<std::string, Piece> pieces_;
};

}  // namespace cs
