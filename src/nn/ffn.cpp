#include "nn/ffn.h"

#include <cmath>

#include "backend/ops.h"

namespace dense::nn {

int64_t swiglu_width(int64_t hidden, int64_t expansion) {
  const int64_t n = 2 * expansion * hidden / 3;
  return (n + 127) / 128 * 128;
}

ExpandedFFN::ExpandedFFN(ParameterSet& params, const std::string& prefix, int64_t hidden, int64_t expansion,
                         double dropout)
    : drop_in_(dropout), drop_out_(dropout) {
  const Init init = Init::normal(1.0 / std::sqrt(2.0 * double(hidden) * double(expansion)));
  w1_ = params.add(prefix + ".w1", {hidden, expansion * hidden}, ParamKind::Weight, init);
  w2_ = params.add(prefix + ".w2", {expansion * hidden, hidden}, ParamKind::Weight, init);
}

Tensor ExpandedFFN::forward(const Tensor& x, Context& ctx) {
  x_ = x.contiguous().view({-1, x.size(-1)});
  pre_ = drop_in_.forward(ops::matmul(x_, false, w1_->value, false), ctx);
  h_ = ops::activation(Activation::Relu, 0.0, pre_);
  Tensor z = ops::matmul(h_, false, w2_->value, false);
  Shape shape = x.shape();
  return drop_out_.forward(z, ctx).view(shape);
}

Tensor ExpandedFFN::backward(const Tensor& dz_in) {
  const Tensor dz = drop_out_.backward(dz_in.contiguous().view({-1, dz_in.size(-1)}));
  ops::matmul(h_, true, dz, false, w2_->grad, 1.0, 1.0);
  Tensor dh = ops::matmul(dz, false, w2_->value, true);
  ops::activation_backward(Activation::Relu, 0.0, pre_, dh, 0.0, dh);
  const Tensor dpre = drop_in_.backward(dh);
  ops::matmul(x_, true, dpre, false, w1_->grad, 1.0, 1.0);
  return ops::matmul(dpre, false, w1_->value, true).view(dz_in.shape());
}

void ExpandedFFN::release() { x_ = pre_ = h_ = Tensor(); }

SwiGLU::SwiGLU(ParameterSet& params, const std::string& prefix, int64_t hidden, int64_t expansion, double dropout,
               double init_range)
    : drop_hidden_(dropout), drop_out_(dropout), width_(swiglu_width(hidden, expansion)) {
  up_ = Linear(params, prefix + ".up", hidden, 2 * width_, false, Init::uniform(init_range));
  proj_ = Linear(params, prefix + ".proj", width_, hidden, false, Init::uniform(init_range));
}

Tensor SwiGLU::forward(const Tensor& x, Context& ctx) {
  const Tensor u = up_.forward(x.contiguous().view({-1, x.size(-1)}));
  a_ = u.slice(1, 0, width_).contiguous();
  b_ = u.slice(1, width_, 2 * width_).contiguous();
  silu_a_ = ops::activation(Activation::Silu, 0.0, a_);
  const Tensor hs = drop_hidden_.forward(ops::mul(silu_a_, b_), ctx);
  return drop_out_.forward(proj_.forward(hs), ctx).view(x.shape());
}

Tensor SwiGLU::backward(const Tensor& dz_in) {
  const Tensor dz = drop_out_.backward(dz_in.contiguous().view({-1, dz_in.size(-1)}));
  const Tensor dhs = drop_hidden_.backward(proj_.backward(dz));
  const int64_t rows = dhs.size(0);
  Tensor du = Tensor::empty({rows, 2 * width_}, dhs.dtype(), dhs.device());
  // da = dHs ⊙ b ⊙ silu'(a); db = dHs ⊙ silu(a).
  Tensor da = ops::mul(dhs, b_);
  ops::activation_backward(Activation::Silu, 0.0, a_, da, 0.0, da);
  du.slice(1, 0, width_).copy_(da);
  du.slice(1, width_, 2 * width_).copy_(ops::mul(dhs, silu_a_));
  return up_.backward(du).view(dz_in.shape());
}

void SwiGLU::release() {
  up_.release();
  proj_.release();
  a_ = b_ = silu_a_ = Tensor();
}

DanetFFN::DanetFFN(ParameterSet& params, const std::string& prefix, int64_t hidden, int64_t expansion, bool swiglu,
                   double dropout, double init_range)
    : swiglu_(swiglu) {
  if (swiglu)
    glu_ = SwiGLU(params, prefix, hidden, expansion, dropout, init_range);
  else
    expanded_ = ExpandedFFN(params, prefix, hidden, expansion, dropout);
}

}  // namespace dense::nn
