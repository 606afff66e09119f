// WeightFile: the reading interface every on-disk weight file offers (a safetensors file, a
// torch.save zip), so HfWeights can hold shards of either kind without caring which. Read-only
// and streaming: each read converts one tensor (or rows of it) straight from the file's map.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace cs {

class WeightFile {
 public:
  virtual ~WeightFile() = default;
  // The file's path, as given to open().
  virtual const std::string& path() const = 0;
  // Tensor names in file order.
  virtual const std::vector<std::string>& names() const = 0;
  // Whether the file holds a tensor of that name.
  virtual bool has(const std::string& name) const = 0;
  // The tensor's shape; throws cs::Error naming the tensor if missing.
  virtual Shape shape(const std::string& name) const = 0;
  // The tensor's dtype; throws cs::Error naming the tensor if missing.
  virtual DType dtype(const std::string& name) const = 0;
  // A read-only view of the tensor's bytes in the map (any alignment), valid while the file lives.
  virtual Tensor tensor(const std::string& name) const = 0;
  // Copies the whole tensor to DST as float (F32/F64/F16/BF16); COUNT must equal its element
  // count. An integer dtype is a cs::Error naming the tensor.
  virtual void read_f32(const std::string& name, float* dst, int64_t count) const = 0;
  // Copies rows [ROW_BEGIN, ROW_END) of the leading dimension to DST as float.
  virtual void read_f32_rows(const std::string& name, int64_t row_begin, int64_t row_end,
                             float* dst) const = 0;
};

}  // namespace cs
