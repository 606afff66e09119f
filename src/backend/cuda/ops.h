// Declarations of the CUDA kernels that fill the CUDA op table (one family per .cu, the same
// stems as backend/cpu). See backend/backend.h for the contracts: every op runs on the context's
// stream (asynchronously: it returns once queued), checks its tensors' dtypes and devices at entry
// and computes in f32 whatever the storage dtype (f32, bf16 or f16 where the contract says
// f32|bf16: --fp16 runs on the GPU with f16 where --bf16 has bf16).
#pragma once
#include "backend/backend.h"

namespace cs {
// The CUDA backend's op table (table.cu).
const Ops& cuda_ops();
}  // namespace cs

namespace cs::cuda {

void matmul(Ctx& c, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, const Tensor& out,
            float alpha, float beta);
void embedding_forward(Ctx& c, const Tensor& tokens, const Tensor& weight, int64_t vocab_offset,
                       const Tensor& out);
void embedding_backward(Ctx& c, const Tensor& tokens, int64_t vocab_offset, const Tensor& dout,
                        const Tensor& dweight);
void rmsnorm_forward(Ctx& c, const Tensor& x, const Tensor& w, float eps, const Tensor& y,
                     const Tensor& rstd);
void rmsnorm_backward(Ctx& c, const Tensor& x, const Tensor& w, const Tensor& rstd,
                      const Tensor& dy, const Tensor& dx, const Tensor& dw, bool accumulate_dx);
void rope_apply(Ctx& c, const Tensor& x, float base, int64_t pos0, const Tensor& positions, bool inverse);
void split_heads(Ctx& c, const Tensor& x, int64_t col0, const Tensor& out);
void merge_heads(Ctx& c, const Tensor& in, const Tensor& x, int64_t col0);
void attention_forward(Ctx& c, const Tensor& q, const Tensor& k, const Tensor& v,
                       const Tensor& slopes, const Tensor& segments, const Tensor& o, const Tensor& lse);
void attention_backward(Ctx& c, const Tensor& q, const Tensor& k, const Tensor& v,
                        const Tensor& slopes, const Tensor& segments, const Tensor& o, const Tensor& lse,
                        const Tensor& dout, const Tensor& dq, const Tensor& dk, const Tensor& dv);
void attention_decode(Ctx& c, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                      int64_t tk, const Tensor& slopes, const Tensor& o);
void kv_append(Ctx& c, const Tensor& x, const Tensor& cache, int64_t pos);
void swiglu_forward(Ctx& c, const Tensor& gu, const Tensor& out);
void swiglu_backward(Ctx& c, const Tensor& gu, const Tensor& dout, const Tensor& dgu);
void cross_entropy_forward(Ctx& c, const Tensor& logits, const Tensor& targets, int64_t vocab_offset,
                           const Tensor& lse, const Tensor& target_logit);
void cross_entropy_combine(Ctx& c, const Tensor& lse_parts, const Tensor& target_logit,
                           const Tensor& targets, const Tensor& losses, const Tensor& lse);
void cross_entropy_backward(Ctx& c, const Tensor& logits, const Tensor& lse, const Tensor& targets,
                            int64_t vocab_offset, float scale, const Tensor& dlogits);
void add_inplace(Ctx& c, const Tensor& y, const Tensor& x);
void scale(Ctx& c, const Tensor& x, float alpha);
void cast(Ctx& c, const Tensor& x, const Tensor& y);
void sum(Ctx& c, const Tensor& x, const Tensor& out);
void sum_squares(Ctx& c, const Tensor& x, const Tensor& out);
void adamw_update(Ctx& c, const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v,
                  double lr, double beta1, double beta2, double eps, double weight_decay,
                  int64_t step, const Tensor& half);

}  // namespace cs::cuda
