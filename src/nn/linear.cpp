#include "nn/linear.h"

#include "backend/ops.h"

namespace dense::nn {

Linear::Linear(ParameterSet& params, const std::string& prefix, int64_t in, int64_t out, bool bias, Init weight_init) {
  weight_ = params.add(prefix + ".weight", {out, in}, ParamKind::Weight, weight_init);
  if (bias) bias_ = params.add(prefix + ".bias", {out}, ParamKind::Bias, Init::constant(0.0));
}

Tensor Linear::forward(const Tensor& x) {
  x_ = x.contiguous();
  return ops::linear(x_, weight_->value, bias_ ? &bias_->value : nullptr);
}

void Linear::backward(const Tensor& dy, Tensor* dx, double beta) {
  DENSE_CHECK(x_.defined(), "Linear '{}' backward without a saved forward", weight_->name);
  ops::linear_backward(x_, weight_->value, dy.contiguous(), dx, beta, &weight_->grad, bias_ ? &bias_->grad : nullptr);
}

Tensor Linear::backward(const Tensor& dy) {
  Shape shape = dy.shape();
  shape.back() = weight_->shape[1];
  Tensor dx = Tensor::empty(shape, dy.dtype(), dy.device());
  backward(dy, &dx, 0.0);
  return dx;
}

Tensor Dropout::forward(const Tensor& x, Context& ctx) {
  draw_ = draw_dropout(ctx, p_, x.numel());
  if (!draw_.active()) return x;
  return ops::dropout(x.contiguous(), draw_.p, draw_.seed, draw_.offset);
}

Tensor Dropout::backward(const Tensor& dy) const {
  if (!draw_.active()) return dy;
  return ops::dropout(dy.contiguous(), draw_.p, draw_.seed, draw_.offset);
}

}  // namespace dense::nn
