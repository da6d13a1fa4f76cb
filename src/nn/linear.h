#pragma once
// Y = X Wᵀ (+ b), W stored [out, in] (nn.Linear layout).
#include <string>

#include "nn/context.h"
#include "nn/parameter.h"

namespace dense::nn {

class Linear {
 public:
  Linear() = default;
  Linear(ParameterSet& params, const std::string& prefix, int64_t in, int64_t out, bool bias, Init weight_init);
  Tensor forward(const Tensor& x);
  // dx = dy W + beta * dx (dx null: input gradient not needed); accumulates dW and db.
  void backward(const Tensor& dy, Tensor* dx, double beta);
  Tensor backward(const Tensor& dy);
  void release() { x_ = Tensor(); }
  Parameter* weight() const { return weight_; }
  Parameter* bias() const { return bias_; }

 private:
  Parameter* weight_ = nullptr;
  Parameter* bias_ = nullptr;
  Tensor x_;
};

class Dropout {
 public:
  Dropout() = default;
  explicit Dropout(double p) : p_(p) {}
  Tensor forward(const Tensor& x, Context& ctx);
  Tensor backward(const Tensor& dy) const;
  double p() const { return p_; }

 private:
  double p_ = 0.0;
  DropoutDraw draw_;
};

}  // namespace dense::nn
