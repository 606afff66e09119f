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

// Rows of a local slice gathered from several places of the global tensor (W_pack under TP: a
// rank holds its heads' q rows, then k rows, then v rows). The local rows are the blocks in order;
// block b covers global rows [global_row, global_row + rows).
struct RowBlock {
  int64_t global_row = 0, rows = 0;
};

// A rank's piece of a tensor: `local` holds the box [offset, offset + local.shape) of a tensor of
// shape `global` (1-D or 2-D); with row_blocks, its rows come from those blocks instead (columns
// still start at offset[1]).
struct ShardTensor {
  std::string name;
  Tensor local;
  Shape global;
  std::vector<int64_t> offset;
  std::vector<RowBlock> row_blocks = {};
};

// The format tag in every shard's __metadata__ ("format") and in meta.json.
inline constexpr const char* kNativeFormat = "chuanspeed-native-1";

// The __metadata__ value that describes one tensor's slice:
// {"global_shape": [...], "offset": [...]} plus "row_blocks": [[global_row, rows], ...] when given.
std::string native_slice_metadata(const Shape& global, const std::vector<int64_t>& offset,
                                  const std::vector<RowBlock>& row_blocks = {});

// "iter_0001000"
std::string iteration_dir_name(int64_t iteration);

class CheckpointWriter {
 public:
  // Starts CKPT/iter_XXXXXXX.tmp/ (removing a stale one left by a crash).
  CheckpointWriter(std::string root, int64_t iteration);
  // Another rank's writer of the checkpoint that rank 0's writer started (after a barrier): it adds
  // its own shards only; rank 0 commits (after the next barrier) and cleans up.
  static CheckpointWriter join(std::string root, int64_t iteration);
  ~CheckpointWriter();  // an uncommitted checkpoint's .tmp folder is removed (by the starting writer)
  // Writes one shard file (e.g. "model-tp00-pp000.safetensors") into the checkpoint.
  void add_shard(const std::string& file, const std::vector<ShardTensor>& tensors);
  // Where a shard file is written before commit, for writers that stream a shard themselves
  // (SafetensorsStreamWriter with native_slice_metadata entries and "format": kNativeFormat).
  std::string shard_path(const std::string& file) const { return tmp_ + "/" + file; }
  // Writes meta.json, renames the folder into place, replaces the latest file, and with
  // keep_last > 0 removes all but the newest keep_last complete checkpoints.
  void commit(const nlohmann::json& meta, int keep_last = 0);

 private:
  CheckpointWriter(std::string root, int64_t iteration, bool joining);
  std::string root_, final_, tmp_;
  bool committed_ = false, joining_ = false;
};

// The iteration named by CKPT/latest_checkpointed_iteration.txt ("release" reads as 0), or -1
// when the folder holds no checkpoint. A latest file naming a missing folder is a cs::Error.
int64_t latest_iteration(const std::string& root);

// The iteration a load takes from ROOT: STEP when >= 0 (Megatron's --ckpt-step), which must be a
// complete checkpoint there (else a cs::Error listing the ones ROOT holds); else the latest, as
// latest_iteration (-1: none).
int64_t load_iteration(const std::string& root, int64_t step = -1);

// Folders under ROOT left by a write that never completed (iter_XXXXXXX.tmp): ignored by readers.
std::vector<std::string> incomplete_checkpoints(const std::string& root);

// Whether DIR looks like a native checkpoint root (has the latest file).
bool is_native_checkpoint(const std::string& dir);
// Throws a cs::Error naming the checkpoint root when DIR is one of its iteration folders
// (CKPT/iter_XXXXXXX: meta.json, no latest file), which loaders would otherwise misread.
void check_not_an_iteration_folder(const std::string& dir);

class CheckpointReader {
 public:
  // Opens CKPT/iter_XXXXXXX/ (meta.json and every *.safetensors shard in it).
  CheckpointReader(const std::string& root, int64_t iteration);
  // CKPT/iter_XXXXXXX/meta.json alone (a cs::Error naming it when unreadable or not an object).
  static nlohmann::json read_meta(const std::string& root, int64_t iteration);
  const nlohmann::json& meta() const { return meta_; }
  const std::string& dir() const { return dir_; }
  // Whether any shard holds a piece of this tensor.
  bool has(const std::string& name) const;
  // Every tensor name, sorted.
  std::vector<std::string> names() const;
  // Elements of the tensor the shards hold together: its global numel when none is missing
  // (writers store each element once); checked before streaming so a missing shard fails early.
  int64_t stored_elements(const std::string& name) const;
  // The tensor's global shape (from the shards' metadata).
  Shape global_shape(const std::string& name) const;
  // Fills dst (shape `local`, the box at `offset` of the global tensor) from whichever shards
  // overlap it; every element must be covered (an error naming the tensor otherwise). The pages
  // read are dropped from this process's map afterwards (they stay in the page cache), so
  // streaming a checkpoint through read() never holds it resident.
  void read(const std::string& name, const std::vector<int64_t>& offset, const Shape& local,
            float* dst) const;
  // Convenience: the whole tensor.
  void read_all(const std::string& name, const Shape& expected, float* dst) const;

 private:
  struct Piece {
    size_t file;
    Shape global;
    int64_t col = 0;               // first global column (0 for 1-D)
    std::vector<RowBlock> blocks;  // the local rows' places in the global tensor
  };
  Piece parse_piece(size_t file, const std::string& name) const;
  std::string dir_;
  nlohmann::json meta_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::multimap<std::string, Piece> pieces_;
};

}  // namespace cs
