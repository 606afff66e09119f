// The CUDA op table. Designated initializers in backend.h's field order: a field renamed, removed
// or reordered there is a compile error here, never a kernel bound to the wrong entry. (copy and
// zero are Backend members, not ops.)
#include "backend/cuda/ops.h"

namespace cs {

const Ops& cuda_ops() {
  static const Ops ops = {
      .name = "cuda",
      .matmul = cuda::matmul,
      .embedding_forward = cuda::embedding_forward,
      .embedding_backward = cuda::embedding_backward,
      .rmsnorm_forward = cuda::rmsnorm_forward,
      .rmsnorm_backward = cuda::rmsnorm_backward,
      .rope_apply = cuda::rope_apply,
      .split_heads = cuda::split_heads,
      .merge_heads = cuda::merge_heads,
      .attention_forward = cuda::attention_forward,
      .attention_backward = cuda::attention_backward,
      .attention_decode = cuda::attention_decode,
      .kv_append = cuda::kv_append,
      .swiglu_forward = cuda::swiglu_forward,
      .swiglu_backward = cuda::swiglu_backward,
      .cross_entropy_forward = cuda::cross_entropy_forward,
      .cross_entropy_combine = cuda::cross_entropy_combine,
      .cross_entropy_backward = cuda::cross_entropy_backward,
      .add_inplace = cuda::add_inplace,
      .scale = cuda::scale,
      .cast = cuda::cast,
      .sum = cuda::sum,
      .sum_squares = cuda::sum_squares,
      .count_zeros = cuda::count_zeros,
      .adamw_update = cuda::adamw_update,
  };
  return ops;
}

}  // namespace cs
