// The CPU op table.
#include "backend/cpu/ops.h"

namespace cs {

const Ops& cpu_ops() {
  static const Ops ops = {
      "cpu",
      cpu::matmul,
      cpu::embedding_forward,
      cpu::embedding_backward,
      cpu::rmsnorm_forward,
      cpu::rmsnorm_backward,
      cpu::rope_apply,
      cpu::split_heads,
      cpu::merge_heads,
      cpu::attention_forward,
      cpu::attention_backward,
      cpu::attention_decode,
      cpu::kv_append,
      cpu::swiglu_forward,
      cpu::swiglu_backward,
      cpu::cross_entropy_forward,
      cpu::cross_entropy_backward,
      cpu::add_inplace,
      cpu::copy,
      cpu::zero,
      cpu::sum,
      cpu::sum_squares,
      cpu::scale,
      cpu::adamw_update,
  };
  return ops;
}

}  // namespace cs
