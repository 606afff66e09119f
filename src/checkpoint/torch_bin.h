// TorchBinFile: a PyTorch state dict saved by torch.save (a zip holding data.pkl and one entry per
// storage), read like a SafetensorsFile: tensors are located once, when the file is opened, and
// each read converts straight from the read-only map, so no whole-model copy is ever made.
// Only contiguous row-major tensors are accepted (what save_pretrained writes); see README.md.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "checkpoint/torch_pickle.h"
#include "checkpoint/weight_file.h"
#include "checkpoint/zip_reader.h"

namespace cs {

class TorchBinFile : public WeightFile {
 public:
  // Opens and validates PATH (archive, pickle, every tensor's storage and bounds); throws
  // cs::Error naming the file (and the entry, opcode, global or tensor) on bad input.
  explicit TorchBinFile(const std::string& path);
  // A whole training checkpoint (torch_pickle.h's Checkpoint mode, e.g. Megatron-LM's
  // model_optim_rng.pt): its tensors named by dotted path, only those KEEP accepts (each checked
  // as above; the rest, an optimizer's or RNG's, are never touched), and every scalar.
  TorchBinFile(const std::string& path, const std::function<bool(const std::string&)>& keep);
  // The same, as a factory.
  static TorchBinFile open(const std::string& path) { return TorchBinFile(path); }

  const std::string& path() const override { return zip_.path(); }
  // Tensor names in pickle (state-dict) order.
  const std::vector<std::string>& names() const override { return names_; }
  bool has(const std::string& name) const override { return entries_.count(name) != 0; }
  Shape shape(const std::string& name) const override { return entry(name).shape; }
  // The tensor's dtype (torch.BoolStorage reads as U8).
  DType dtype(const std::string& name) const override { return entry(name).dtype; }
  Tensor tensor(const std::string& name) const override;
  void read_f32(const std::string& name, float* dst, int64_t count) const override;
  void read_f32_rows(const std::string& name, int64_t row_begin, int64_t row_end,
                     float* dst) const override;
  // The archive's folder name (torch uses the file stem: "pytorch_model", "archive", ...).
  const std::string& prefix() const { return prefix_; }
  // A training checkpoint's non-tensor values by path ("args.num_layers", "iteration", ...).
  const std::map<std::string, TorchScalar>& scalars() const { return scalars_; }

 private:
  struct Entry {
    DType dtype = DType::F32;
    Shape shape;
    const uint8_t* data = nullptr;  // first element, inside the map
  };
  const Entry& entry(const std::string& name) const;
  [[noreturn]] void fail(const std::string& what, const std::string& hint) const;
  std::pair<const uint8_t*, uint64_t> find_pickle(std::string* entry);
  void add_tensors(std::vector<TorchTensorRecord> records);

  ZipReader zip_;
  std::string prefix_;
  std::vector<std::string> names_;
  std::unordered_map<std::string, Entry> entries_;
  std::map<std::string, TorchScalar> scalars_;
};

}  // namespace cs
