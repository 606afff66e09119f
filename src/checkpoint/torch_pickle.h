// A strict reader of the data.pkl that torch.save writes for a state dict. It is not a pickle
// interpreter: it knows the handful of opcodes and globals such a file uses (see README.md) and
// builds plain records from them; any other opcode or global is a cs::Error naming it, so a
// checkpoint can never make the loader run code. Tensor bytes are not touched here.
#pragma once
#include <cstdint>
#include <map>
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

// What the reader accepts. StateDict: a plain state dict (torch.save(model.state_dict())) and nothing
// else; any other global is refused. Checkpoint: a whole training checkpoint (Megatron-LM's
// model_optim_rng.pt: argparse.Namespace arguments, numpy RNG states, enums, ...): globals other
// than the tensor ones become opaque objects, never looked up or called; their BUILD state (an
// object's attributes) is kept as a dict. The opcodes such files add (floats, bytes, NEWOBJ, sets,
// ...) are data only and accepted in this mode alone.
enum class PickleMode { StateDict, Checkpoint };

// A value of a checkpoint that is not a tensor (a leaf of its tree).
struct TorchScalar {
  enum class Kind { None, Bool, Int, Float, Str, Other };
  Kind kind = Kind::None;
  int64_t i = 0;  // Bool, Int
  double f = 0;   // Float
  std::string s;  // Str: the string; Other: what it is ("torch.bfloat16", "bytes", "big int", or
                  // the global whose call made an opaque object, e.g. "argparse.Namespace")
};

// A checkpoint's pickle flattened to dotted paths: a dict's string (or integer) key and an
// object's attribute add ".key", a list's or tuple's item ".N"; the root's keys have no leading
// dot ("model.decoder.layers.0.mlp.linear_fc1.weight", "args.num_layers", "rng_state.0....").
// An opaque object is a scalar (Other, its maker's name) at its own path, with its attributes
// below it and the arguments it was made with under ".__args__" (an enum member's value:
// "args.position_embedding_type.__args__.0"). Entries under any other key are left out, a
// container met twice is expanded once, and the leaves and the bytes of their names are bounded
// (LIMITS: a small hostile pickle could otherwise ask for far more memory than it has bytes).
struct TorchObject {
  std::vector<TorchTensorRecord> tensors;  // name: the path; in pickle order
  std::map<std::string, TorchScalar> scalars;
};
struct TorchObjectLimits {
  uint64_t leaves = 5'000'000, name_bytes = uint64_t(256) << 20;
};
TorchObject parse_torch_checkpoint(const uint8_t* data, uint64_t size, const std::string& where,
                                   const TorchObjectLimits& limits = {});

// Parses SIZE bytes at DATA (a data.pkl) into the state dict's tensors, in pickle order.
// The top-level object must be a dict or collections.OrderedDict whose keys are strings and whose
// values are tensors. WHERE (e.g. "dir/pytorch_model.bin: archive/data.pkl") prefixes messages:
// "[torch_pickle] WHERE: byte N: ...".
std::vector<TorchTensorRecord> parse_torch_pickle(const uint8_t* data, uint64_t size,
                                                  const std::string& where);

}  // namespace cs
