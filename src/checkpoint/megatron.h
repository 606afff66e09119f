// A Megatron-LM checkpoint in its torch format (--ckpt-format torch; the legacy models' too),
// read-only:
//   ROOT/latest_checkpointed_iteration.txt   an iteration number, or "release"
//   ROOT/iter_0000123/ (or release/)          one folder per saved iteration
//     mp_rank_TT/model_optim_rng.pt           tensor-parallel rank TT (no pipeline parallelism)
//     mp_rank_TT_PPP/model_optim_rng.pt       ... and pipeline stage PPP
// Each file is a torch.save of Megatron's dict ('args', 'checkpoint_version', 'iteration',
// 'model' or 'model0'.. per virtual stage, 'optimizer', 'rng_state', ...). Only the model's tensors
// are kept; the rest is parsed as data and never touched (see README.md). The tracker's name is
// the native format's too: a native iteration folder holds meta.json, a Megatron one does not.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/torch_bin.h"

namespace cs {

// Whether ROOT is a Megatron checkpoint of either format: its tracker names a folder that holds
// mp_rank_* folders (torch) or Megatron's distributed-checkpoint files (.metadata, common.pt:
// torch_dist, which MegatronCheckpoint refuses in one line).
bool is_megatron_checkpoint(const std::string& root);

class MegatronCheckpoint {
 public:
  // Opens ROOT's latest iteration: every mp_rank file present (a full TP x PP grid), each parsed.
  // Anything else (torch_dist, expert-parallel ranks, a missing rank) is a cs::Error naming it.
  explicit MegatronCheckpoint(const std::string& root);
  const std::string& dir() const { return dir_; }  // the iteration folder
  bool release() const { return release_; }
  int64_t iteration() const { return iteration_; }  // 0 for a release
  int tp() const { return tp_; }
  int pp() const { return pp_; }
  // The file of tensor-parallel rank t and pipeline stage p; its tensors are the model's, named
  // without their "model." prefix.
  const TorchBinFile& file(int t, int p) const { return *files_[size_t(p * tp_ + t)]; }
  const std::string& path(int t, int p) const { return paths_[size_t(p * tp_ + t)]; }
  // A scalar of rank (0, 0)'s dict by path ("args.num_layers", "checkpoint_version"), or null.
  const TorchScalar* scalar(const std::string& path) const;

 private:
  std::string dir_;
  bool release_ = false;
  int64_t iteration_ = 0;
  int tp_ = 0, pp_ = 0;
  std::vector<std::unique_ptr<TorchBinFile>> files_;
  std::vector<std::string> paths_;
};

}  // namespace cs
