// TorchBinFile: finds "<prefix>/data.pkl", parses it with the strict pickle reader, and checks each
// tensor against its storage entry "<prefix>/data/<key>" (size = numel x element size, the view
// inside it, contiguity) so reads cannot fail on layout later. Layout facts: torch/serialization.py
// (_save, _load) and caffe2/serialize/inline_container.cc (the archive).
#include "checkpoint/torch_bin.h"

#include <cstring>

#include "checkpoint/safetensors.h"
#include "checkpoint/torch_pickle.h"

namespace cs {

namespace {

std::string in_quotes(const std::string& s) { return "'" + s + "'"; }

std::string tuple_str(const std::vector<int64_t>& v) {
  std::string s = "(";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + (v.size() == 1 ? ",)" : ")");
}

// Whether STRIDES lay out SIZES row-major without gaps. Like torch's is_contiguous, a dimension
// of size 1 may have any stride, and an empty tensor is contiguous.
bool is_row_major(const std::vector<int64_t>& sizes, const std::vector<int64_t>& strides) {
  int64_t expected = 1;
  for (size_t i = sizes.size(); i-- > 0;) {
    if (sizes[i] == 0) return true;
    if (sizes[i] != 1 && strides[i] != expected) return false;
    expected *= sizes[i];
  }
  return true;
}

}  // namespace

void TorchBinFile::fail(const std::string& what, const std::string& hint) const {
  throw Error("[torch_bin] " + path() + ": " + what + ". Hint: " + hint);
}

TorchBinFile::TorchBinFile(const std::string& path) : zip_(path) {
  std::string entry;
  auto [pkl, pkl_size] = find_pickle(&entry);
  add_tensors(parse_torch_pickle(pkl, pkl_size, path + ": " + entry));
}

TorchBinFile::TorchBinFile(const std::string& path, const std::function<bool(const std::string&)>& keep)
    : zip_(path) {
  std::string entry;
  auto [pkl, pkl_size] = find_pickle(&entry);
  TorchObject all = parse_torch_checkpoint(pkl, pkl_size, path + ": " + entry);
  std::vector<TorchTensorRecord> kept;
  for (TorchTensorRecord& r : all.tensors)
    if (keep(r.name)) kept.push_back(std::move(r));
  add_tensors(std::move(kept));
  scalars_ = std::move(all.scalars);
}

std::pair<const uint8_t*, uint64_t> TorchBinFile::find_pickle(std::string* entry) {
  // The pickle sits at "<prefix>/data.pkl", prefix being one folder of any name.
  std::vector<std::string> pickles;
  for (const std::string& e : zip_.entries()) {
    size_t slash = e.find('/');
    if (slash != std::string::npos && slash > 0 && e.substr(slash) == "/data.pkl")
      pickles.push_back(e);
  }
  const std::string not_torch =
      "this is not a checkpoint written by torch.save (TorchScript "
      "archives and other zips are not state dicts)";
  if (pickles.empty())
    fail("no <folder>/data.pkl entry among the archive's " + std::to_string(zip_.entries().size()) +
             " entries",
         not_torch);
  if (pickles.size() > 1)
    fail("several data.pkl entries (" + pickles[0] + ", " + pickles[1] + "), expected one",
         not_torch);
  prefix_ = pickles[0].substr(0, pickles[0].size() - std::strlen("/data.pkl"));

  // Newer torch records the byte order of the data; ours is little-endian.
  if (zip_.has(prefix_ + "/byteorder")) {
    auto [p, n] = zip_.data(prefix_ + "/byteorder");
    std::string order(reinterpret_cast<const char*>(p), n);
    if (order != "little")
      fail("byteorder got '" + order + "', expected 'little'",
           "re-save the checkpoint on a little-endian machine");
  }

  *entry = pickles[0];
  return zip_.data(pickles[0]);
}

void TorchBinFile::add_tensors(std::vector<TorchTensorRecord> records) {
  const std::string corrupt = "the checkpoint is corrupt; re-download or re-save it";
  for (TorchTensorRecord& r : records) {
    const std::string what = "tensor " + in_quotes(r.name);
    if (entries_.count(r.name)) fail(what + " appears twice in the state dict", corrupt);
    if (r.sizes.size() > 4)
      fail(what + " has " + std::to_string(r.sizes.size()) + " dims, expected at most 4",
           "ChuanSpeed tensors have at most 4 dims; reshape the tensor before saving");
    Entry e;
    e.dtype = r.dtype;
    e.shape.ndim = int(r.sizes.size());
    uint64_t numel = 1;
    for (size_t i = 0; i < r.sizes.size(); ++i) {
      e.shape.dims[i] = r.sizes[i];
      if (__builtin_mul_overflow(numel, uint64_t(r.sizes[i]), &numel))
        fail(what + " size " + tuple_str(r.sizes) + " overflows", corrupt);
    }
    if (!is_row_major(r.sizes, r.strides))
      fail(what + " has stride " + tuple_str(r.strides) + " for size " + tuple_str(r.sizes) +
               ", expected a contiguous row-major layout",
           "save contiguous tensors, e.g. {k: v.contiguous() for k, v in state_dict.items()}");

    const std::string key = prefix_ + "/data/" + r.storage_key;
    if (!zip_.has(key))
      fail(what + ": its storage entry " + key + " is missing from the archive", corrupt);
    auto [bytes, nbytes] = zip_.data(key);
    const uint64_t elem = dtype_size(r.dtype);
    uint64_t want = 0;
    if (__builtin_mul_overflow(uint64_t(r.storage_numel), elem, &want) || want != nbytes)
      fail("storage " + key + " (of " + what + ") has " + std::to_string(nbytes) +
               " bytes, expected " + std::to_string(r.storage_numel) + " elements x " +
               std::to_string(elem) + " bytes",
           corrupt);
    const uint64_t offset = uint64_t(r.storage_offset);
    if (offset > uint64_t(r.storage_numel) || numel > uint64_t(r.storage_numel) - offset)
      fail(what + " of size " + tuple_str(r.sizes) + " needs elements [" + std::to_string(offset) +
               ", " + std::to_string(offset + numel) + ") of storage " + key + ", which has " +
               std::to_string(r.storage_numel),
           corrupt);
    e.data = bytes + offset * elem;
    names_.push_back(r.name);
    entries_.emplace(r.name, e);
  }
}

const TorchBinFile::Entry& TorchBinFile::entry(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end())
    fail("no tensor named " + in_quotes(name) + " (the file has " + std::to_string(names_.size()) +
             " tensors)",
         "check the tensor name; names() lists what the file holds");
  return it->second;
}

Tensor TorchBinFile::tensor(const std::string& name) const {
  const Entry& e = entry(name);
  return Tensor(const_cast<uint8_t*>(e.data), e.shape, e.dtype);
}

void TorchBinFile::read_f32(const std::string& name, float* dst, int64_t count) const {
  const Entry& e = entry(name);
  if (!is_float_dtype(e.dtype))
    fail("tensor " + in_quotes(name) + " has dtype " + dtype_name(e.dtype) +
             ", expected F32, F64, F16 or BF16",
         "this tensor is not a float weight");
  if (count != e.shape.numel())
    fail("tensor " + in_quotes(name) + " has shape " + e.shape.str() + " (" +
             std::to_string(e.shape.numel()) + " elements), got a destination of " +
             std::to_string(count) + " floats",
         "check that the model config matches the checkpoint");
  if (count > 0) convert_to_f32(e.data, e.dtype, count, dst);  // an empty DST may be null
}

void TorchBinFile::read_f32_rows(const std::string& name, int64_t row_begin, int64_t row_end,
                                 float* dst) const {
  const Entry& e = entry(name);
  if (!is_float_dtype(e.dtype))
    fail("tensor " + in_quotes(name) + " has dtype " + dtype_name(e.dtype) +
             ", expected F32, F64, F16 or BF16",
         "this tensor is not a float weight");
  if (e.shape.ndim < 1 || row_begin < 0 || row_begin > row_end || row_end > e.shape[0])
    fail("tensor " + in_quotes(name) + " rows [" + std::to_string(row_begin) + ", " +
             std::to_string(row_end) + ") out of range for shape " + e.shape.str(),
         "check the sharding of this tensor");
  int64_t row = e.shape[0] ? e.shape.numel() / e.shape[0] : 0;
  if (row_end == row_begin || row == 0) return;
  convert_to_f32(e.data + size_t(row_begin * row) * dtype_size(e.dtype), e.dtype,
                 (row_end - row_begin) * row, dst);
}

}  // namespace cs
