#pragma once
// The reference's `Activation2Class` registry (docs/model.md §1.2): norms and activations chosen by name in the
// config (pre/post/embedding/final/pooler/LM-head norms, pooler and LM-head activations). One module wraps
// them all so every config slot accepts every name.
#include <string>

#include "backend/backend.h"
#include "nn/parameter.h"

namespace dense::nn {

struct NormSpec {
  enum Kind : uint8_t { Identity, Row, Act } kind = Identity;
  RowNorm row = RowNorm::MaxNorm;
  bool has_gain = false;
  bool has_bias = false;
  double eps = 0.0;
  Activation act = Activation::Identity;
  double slope = 0.0;
  bool upcast = false;  // legacy_gelu: computed in f32 even for half inputs
};

// Parses a registry name; `field` names the config key in the error ("pre_attn_ln_type").
// An empty name, "none" and "no_ln" give the identity.
NormSpec parse_norm(const std::string& name, const std::string& field);
// Activations only (pooler_act, lm_head_act, hidden_act).
NormSpec parse_activation(const std::string& name, const std::string& field);
// LayerNorm with bias (BERT baseline).
NormSpec layer_norm_spec(double eps);

class Norm {
 public:
  Norm() = default;
  // Declares the gain `<prefix>.weight` (and `<prefix>.bias`) when the kind has one.
  Norm(ParameterSet& params, const std::string& prefix, const NormSpec& spec, int64_t dim);
  bool is_identity() const { return spec_.kind == NormSpec::Identity; }
  const NormSpec& spec() const { return spec_; }

  Tensor forward(const Tensor& x);
  // dx = ∂loss/∂x + beta * dx; accumulates the gain/bias gradients.
  void backward(const Tensor& dy, Tensor& dx, double beta);
  Tensor backward(const Tensor& dy);
  void release() {
    x_ = Tensor();
    stats_ = Tensor();
  }

 private:
  NormSpec spec_;
  Parameter* gain_ = nullptr;
  Parameter* bias_ = nullptr;
  Tensor x_, stats_;
};

}  // namespace dense::nn
