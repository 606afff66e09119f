// The CPU op table. Designated initializers in backend.h's field order: a field renamed, removed
// or reordered there is a compile error here, never a kernel bound to the wrong entry. (copy and
// zero are Backend members, not ops.)
#include "backend/cpu/ops.h"

namespace cs {

const Ops& cpu_ops() {
  static const Ops ops = {
      .name = "cpu",
      .matmul = cpu::matmul,
      .embedding_forward = cpu::embedding_forward,
      .embedding_backward = cpu::embedding_backward,
      .rmsnorm_forward = cpu::rmsnorm_forward,
      .rmsnorm_backward = cpu::rmsnorm_backward,
      .rope_apply = cpu::rope_apply,
      .split_heads = cpu::split_heads,
      .merge_heads = cpu::merge_heads,
      .attention_forward = cpu::attention_forward,
      .attention_backward = cpu::attention_backward,
      .attention_decode = cpu::attention_decode,
      .kv_append = cpu::kv_append,
      .swiglu_forward = cpu::swiglu_forward,
      .swiglu_backward = cpu::swiglu_backward,
      .cross_entropy_forward = cpu::cross_entropy_forward,
      .cross_entropy_combine = cpu::cross_entropy_combine,
      .cross_entropy_backward = cpu::cross_entropy_backward,
      .add_inplace = cpu::add_inplace,
      .scale = cpu::scale,
      .cast = cpu::cast,
      .sum = cpu::sum,
      .sum_squares = cpu::sum_squares,
      .count_zeros = cpu::count_zeros,
      .adamw_update = cpu::adamw_update,
  };
  return ops;
}

}  // namespace cs
