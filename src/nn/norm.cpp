#include "nn/norm.h"

#include "backend/ops.h"

namespace dense::nn {

namespace {
NormSpec act_spec(Activation a, double slope = 0.0, bool upcast = false) {
  NormSpec s;
  s.kind = NormSpec::Act;
  s.act = a;
  s.slope = slope;
  s.upcast = upcast;
  return s;
}
NormSpec row_spec(RowNorm r, bool gain, double eps) {
  NormSpec s;
  s.kind = NormSpec::Row;
  s.row = r;
  s.has_gain = gain;
  s.eps = eps;
  return s;
}

bool try_activation(const std::string& name, NormSpec& out) {
  if (name == "gelu")
    out = act_spec(Activation::Gelu);
  else if (name == "legacy_gelu")
    out = act_spec(Activation::Gelu, 0.0, true);
  else if (name == "gelu_tanh")
    out = act_spec(Activation::GeluTanh);
  else if (name == "relu")
    out = act_spec(Activation::Relu);
  else if (name == "tanh")
    out = act_spec(Activation::Tanh);
  else if (name == "silu" || name == "swish")
    out = act_spec(Activation::Silu);
  else if (name == "sigmoid")
    out = act_spec(Activation::Sigmoid);
  else if (name == "leaky_relu")
    out = act_spec(Activation::LeakyRelu, 0.01);
  else if (name == "leaky_relu_0.1")
    out = act_spec(Activation::LeakyRelu, 0.1);
  else if (name == "hardtanh")
    out = act_spec(Activation::Hardtanh);
  else if (name == "identity" || name == "linear")
    out = NormSpec{};
  else
    return false;
  return true;
}

constexpr const char* kActivationNames =
    "gelu, legacy_gelu, gelu_tanh, relu, tanh, silu, sigmoid, leaky_relu, leaky_relu_0.1, hardtanh, identity";
}  // namespace

NormSpec parse_norm(const std::string& name, const std::string& field) {
  if (name.empty() || name == "none" || name == "no_ln" || name == "null") return NormSpec{};
  if (name == "max_norm") return row_spec(RowNorm::MaxNorm, false, 1e-3);
  if (name == "scaled_max_norm") return row_spec(RowNorm::ScaledMaxNorm, true, 1e-12);
  if (name == "prescaled_max_norm") return row_spec(RowNorm::PreScaledMaxNorm, true, 1e-12);
  if (name == "uncentered_ln") return row_spec(RowNorm::UncenteredLN, true, 1e-12);
  if (name == "uncentered_fixed_ln") return row_spec(RowNorm::UncenteredLN, false, 1e-12);
  if (name == "standard_ln") return row_spec(RowNorm::StandardLN, true, 1e-12);
  NormSpec s;
  if (try_activation(name, s)) return s;
  DENSE_FAIL(
      "{}: unknown norm '{}'; allowed: none, no_ln, max_norm, scaled_max_norm, prescaled_max_norm, "
      "uncentered_ln, uncentered_fixed_ln, standard_ln, {}",
      field, name, kActivationNames);
}

NormSpec parse_activation(const std::string& name, const std::string& field) {
  NormSpec s;
  if (try_activation(name, s)) return s;
  DENSE_FAIL("{}: unknown activation '{}'; allowed: {}", field, name, kActivationNames);
}

NormSpec layer_norm_spec(double eps) {
  NormSpec s = row_spec(RowNorm::StandardLN, true, eps);
  s.has_bias = true;
  return s;
}

Norm::Norm(ParameterSet& params, const std::string& prefix, const NormSpec& spec, int64_t dim) : spec_(spec) {
  if (spec.has_gain) gain_ = params.add(prefix + ".weight", {dim}, ParamKind::Gain, Init::constant(1.0));
  if (spec.has_bias) bias_ = params.add(prefix + ".bias", {dim}, ParamKind::Bias, Init::constant(0.0));
}

Tensor Norm::forward(const Tensor& x) {
  if (spec_.kind == NormSpec::Identity) return x;
  x_ = x.contiguous();
  if (spec_.kind == NormSpec::Act) {
    if (spec_.upcast && (x.dtype() == DType::BF16 || x.dtype() == DType::F16))
      return ops::activation(spec_.act, spec_.slope, x_.to(DType::F32)).to(x.dtype());
    return ops::activation(spec_.act, spec_.slope, x_);
  }
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  const int64_t rows = x.numel() / x.size(-1);
  stats_ = Tensor::empty({rows, 2}, ops::rownorm_stats_dtype(x.dtype()), x.device());
  ops::rownorm_forward(spec_.row, x_, gain_ ? &gain_->value : nullptr, bias_ ? &bias_->value : nullptr, spec_.eps, y,
                       stats_);
  return y;
}

void Norm::backward(const Tensor& dy, Tensor& dx, double beta) {
  const Tensor g = dy.contiguous();
  if (spec_.kind == NormSpec::Identity) {
    ops::accumulate(g, beta, dx);
    return;
  }
  DENSE_CHECK(x_.defined(), "Norm::backward without a saved forward");
  if (spec_.kind == NormSpec::Act) {
    ops::activation_backward(spec_.act, spec_.slope, x_, g, beta, dx);
    return;
  }
  ops::rownorm_backward(spec_.row, x_, gain_ ? &gain_->value : nullptr, stats_, g, beta, dx,
                        gain_ ? &gain_->grad : nullptr, bias_ ? &bias_->grad : nullptr);
}

Tensor Norm::backward(const Tensor& dy) {
  if (spec_.kind == NormSpec::Identity) return dy;
  Tensor dx = Tensor::empty(dy.shape(), dy.dtype(), dy.device());
  backward(dy, dx, 0.0);
  return dx;
}

}  // namespace dense::nn
