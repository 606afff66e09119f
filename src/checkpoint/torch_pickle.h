// A strict reader of the data.pkl that torch.save writes for a state dict. It is not a pickle
// interpreter: it knows the handful of opcodes and globals such a file uses (see README.md) and
// builds plain records from them; any other opcode or global is a cs::Error naming it, so a
// checkpoint can never make the loader run code. Tensor bytes are not touched here.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace cs {

// One tensor of a state dict, as _rebuild_tensor_v2 describes it.
struct TorchTensorRecord {
  std::string name;              // the state-dict key
  DType dtype = DType::F32;      // from the storage type (torch.FloatStorage -> F32, ...)
  std::vector<int64_t> sizes;    // empty for a 0-d tensor
  std::vector<int64_t> strides;  // in elements, same length as sizes
  std::string storage_key;       // the bytes are the archive entry "<prefix>/data/<storage_key>"
  int64_t storage_offset = 0;    // in elements, where the tensor starts in its storage
  int64_t storage_numel = 0;     // the storage's element count, as its persistent id states
};

// Parses SIZE bytes at DATA (a data.pkl) into the state dict's tensors, in pickle order.
// The top-level object must be a dict or collections.OrderedDict whose keys are strings and whose
// values are tensors. WHERE (e.g. "dir/pytorch_model.bin: archive/data.pkl") prefixes messages:
// "[torch_pickle] WHERE: byte N: ...".
std::vector<TorchTensorRecord> parse_torch_pickle(const uint8_t* data, uint64_t size,
                                                  const std::string& where);

}  // namespace cs
