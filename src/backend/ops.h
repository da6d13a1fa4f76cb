#pragma once
// Operations declared once (PyTorch ATen style): each checks shapes, dtypes, devices and contiguity here, once,
// throwing dense::Error with a message that starts with the op's name and says what was expected, then calls
// the kernel of the tensors' backend. Backends trust these checks and do not repeat them; they check only what
// they alone can know (values behind device pointers, launch errors, their own kernel limits).
// tests/backend/op_contract_test.cpp feeds every op a wrong dtype, shape and pairing. Modules in src/nn use only these.
#include <cstdint>

#include "backend/backend.h"
#include "core/tensor.h"

namespace dense::ops {

// ---- GEMM ----------------------------------------------------------------------------------------
// out = alpha * op(a) op(b) + beta * out. a, b, out are 2-D [rows, cols] or 3-D [batch, rows, cols];
// a 2-D operand is broadcast over the batch. Inner dims may be strided (any row stride, unit column
// stride), and a transposed view (unit row stride) is handled by flipping the transpose flag.
void matmul(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, Tensor& out, double alpha = 1.0,
            double beta = 0.0);
Tensor matmul(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b);

// y = x Wᵀ (+ bias): x [..., in], w [out, in].
Tensor linear(const Tensor& x, const Tensor& w, const Tensor* bias);
// Gradients of linear: dx = dy W + beta_dx * dx (skipped when dx is null); dw += dyᵀ x; dbias += Σ dy.
void linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, double beta_dx, Tensor* dw,
                     Tensor* dbias);

// ---- element-wise --------------------------------------------------------------------------------
void binary(BinaryOp op, Broadcast bcast, double alpha, const Tensor& a, const Tensor& b, double beta, Tensor& out);
Tensor add(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
// y += alpha * x (same shapes).
void axpy(double alpha, const Tensor& x, Tensor& y);
// dst = src + beta * dst (beta 0 overwrites).
void accumulate(const Tensor& src, double beta, Tensor& dst);
// y = alpha * x (new tensor).
Tensor scale(const Tensor& x, double alpha);
// out[r, c] = x[r, c] * v[r]  (x viewed [rows, cols] with cols = x.size(-1)).
Tensor scale_rows(const Tensor& x, const Tensor& v);
Tensor activation(Activation act, double slope, const Tensor& x);
void activation_backward(Activation act, double slope, const Tensor& x, const Tensor& dy, double beta, Tensor& dx);
Tensor dropout(const Tensor& x, double p, uint64_t seed, uint64_t offset);
// Sum over the middle dim of x viewed [outer, rows, cols] into out [outer, cols]: out = alpha*Σ + beta*out.
void sum_rows(const Tensor& x, int64_t outer, int64_t rows, double alpha, double beta, Tensor& out);
double sum(const Tensor& x);
double max_abs(const Tensor& x);
int64_t count_nonfinite(const Tensor& x);
// Σ x², in f64 over fixed blocks combined in order: the same value for any thread count.
double sum_squares(const Tensor& x);
// x *= factor in place (contiguous, floating), each element in f64 and rounded once.
void scale_(Tensor& x, double factor);

// ---- optimizers ----------------------------------------------------------------------------------
// One fused AdamW or LAMB update (Backend::optimizer_step): values, grads and the moments contiguous [numel]
// of one dtype (f32 or f64) on one device, with s.blocks I64 [nblocks, 4] there too, inside [0, numel).
void optimizer_step(const OptimizerStep& s, Tensor& values, const Tensor& grads, Tensor& exp_avg, Tensor& exp_avg_sq);

// ---- normalisation, gathers, positions -------------------------------------------------------------
// stats: [rows, 2] in f64 for f64 inputs, else f32 (see Backend::rownorm_forward).
inline DType rownorm_stats_dtype(DType x) { return x == DType::F64 ? DType::F64 : DType::F32; }
void rownorm_forward(RowNorm kind, const Tensor& x, const Tensor* gain, const Tensor* bias, double eps, Tensor& y,
                     Tensor& stats);
void rownorm_backward(RowNorm kind, const Tensor& x, const Tensor* gain, const Tensor& stats, const Tensor& dy,
                      double beta_dx, Tensor& dx, Tensor* dgain, Tensor* dbias);
void gather_rows(const Tensor& table, const Tensor& ids, double beta, Tensor& out);
Tensor gather_rows(const Tensor& table, const Tensor& ids);
void scatter_add_rows(const Tensor& src, const Tensor& ids, Tensor& table);
Tensor positional_scale(const Tensor& x, const Tensor& table, const Tensor& positions);
Tensor rope(const Tensor& x, const Tensor& cos, const Tensor& sin, const Tensor& positions, bool inverse);
void band_mask(Tensor& s, int64_t lo, int64_t hi);

// ---- softmax and losses ----------------------------------------------------------------------------
void softmax_forward(const Tensor& s, double scale, const Tensor* key_valid, int64_t heads, Tensor& p);
void softmax_backward(const Tensor& p, const Tensor& dp, double scale, Tensor& ds);
void cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& loss, Tensor& lse);
void cross_entropy_backward(const Tensor& logits, const Tensor& labels, const Tensor& lse, double scale,
                            Tensor& dlogits);
void max_pool_forward(const Tensor& x, Tensor& out, Tensor& argmax);
void max_pool_backward(const Tensor& dout, const Tensor& argmax, Tensor& dx);

// ---- graph (sparse) attention ----------------------------------------------------------------------
// See Backend::graph_attention_forward / _backward: q [B, Nq, H·e], k and v [B, Nk, H·e], o [B, Nq, H·e]
// (may be q itself), lse [B, H, Nq] in rownorm_stats_dtype(q). For Softmax the backward needs lse.
void graph_attention_forward(GraphScore score, const Tensor& q, const Tensor& k, const Tensor& v, const GraphRef& graph,
                             const Tensor* key_valid, int64_t heads, double scale, Tensor& o, Tensor* lse);
void graph_attention_backward(GraphScore score, const Tensor& q, const Tensor& k, const Tensor& v,
                              const GraphRef& graph, const GraphRef& transposed, const Tensor* key_valid, int64_t heads,
                              double scale, const Tensor& o, const Tensor& dout, const Tensor* lse, Tensor& dq,
                              Tensor& dk, Tensor& dv);
// ---- random initialisation ---------------------------------------------------------------------------
void fill_uniform(Tensor& t, double low, double high, uint64_t seed, uint64_t offset);
void fill_normal(Tensor& t, double mean, double std, uint64_t seed, uint64_t offset);

}  // namespace dense::ops
