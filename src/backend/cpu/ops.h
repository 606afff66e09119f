// Declarations of the CPU kernels that fill the op table (one family per .cpp), plus the naive
// attention kept as the test and benchmark reference. See backend/backend.h for the contracts.
#pragma once
#include "backend/backend.h"

namespace cs::cpu {

void matmul(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, Tensor& c, float alpha,
            float beta);
void embedding_forward(const Tensor& tokens, const Tensor& weight, Tensor& out);
void embedding_backward(const Tensor& tokens, const Tensor& dout, Tensor& dweight);
void rmsnorm_forward(const Tensor& x, const Tensor& w, float eps, Tensor& y, Tensor& rstd);
void rmsnorm_backward(const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dy,
                      Tensor& dx, Tensor& dw, bool accumulate_dx);
void rope_apply(Tensor& x, float base, int64_t pos0, bool inverse);
void split_heads(const Tensor& x, int64_t col0, Tensor& out);
void merge_heads(const Tensor& in, Tensor& x, int64_t col0);
void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& slopes,
                       Tensor& o, Tensor& lse);
void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& slopes,
                        const Tensor& o, const Tensor& lse, const Tensor& dout, Tensor& dq,
                        Tensor& dk, Tensor& dv);
// The reference: materialises the (T, T) scores of one head at a time. Same contract as above.
void attention_naive_forward(const Tensor& q, const Tensor& k, const Tensor& v,
                             const Tensor& slopes, Tensor& o, Tensor& lse);
void attention_naive_backward(const Tensor& q, const Tensor& k, const Tensor& v,
                              const Tensor& slopes, const Tensor& o, const Tensor& lse,
                              const Tensor& dout, Tensor& dq, Tensor& dk, Tensor& dv);
void attention_decode(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, int64_t tk,
                      const Tensor& slopes, Tensor& o);
void kv_append(const Tensor& x, Tensor& cache, int64_t pos);
void swiglu_forward(const Tensor& gu, Tensor& out);
void swiglu_backward(const Tensor& gu, const Tensor& dout, Tensor& dgu);
void cross_entropy_forward(const Tensor& logits, const Tensor& targets, Tensor& losses, Tensor& lse);
void cross_entropy_backward(const Tensor& logits, const Tensor& lse, const Tensor& targets,
                            float scale, Tensor& dlogits);
void add_inplace(Tensor& y, const Tensor& x);
void copy(const Tensor& x, Tensor& y);
void zero(Tensor& x);
double sum(const Tensor& x);
double sum_squares(const Tensor& x);
void scale(Tensor& x, float alpha);
void adamw_update(Tensor& p, const Tensor& g, Tensor& m, Tensor& v, double lr, double beta1,
                  double beta2, double eps, double weight_decay, int64_t step);

}  // namespace cs::cpu
