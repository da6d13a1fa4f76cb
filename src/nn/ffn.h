#pragma once
// DANet feed-forward networks (docs/model.md §1.9): the expanded ReLU FFN (weights used as stored, dropout before
// the ReLU) and SwiGLU. Neither has biases, which keeps padded rows exactly zero.
#include <string>

#include "nn/context.h"
#include "nn/linear.h"
#include "nn/parameter.h"

namespace dense::nn {

// n = roundup_128(floor(2 r d / 3)).
int64_t swiglu_width(int64_t hidden, int64_t expansion);

class ExpandedFFN {
 public:
  ExpandedFFN() = default;
  // `<prefix>.w1` [d, r d], `<prefix>.w2` [r d, d], Normal(0, 1/sqrt(2 d r)).
  ExpandedFFN(ParameterSet& params, const std::string& prefix, int64_t hidden, int64_t expansion, double dropout);
  Tensor forward(const Tensor& x, Context& ctx);
  Tensor backward(const Tensor& dz);
  void release();

 private:
  Parameter* w1_ = nullptr;
  Parameter* w2_ = nullptr;
  Dropout drop_in_, drop_out_;
  Tensor x_, pre_, h_;  // input, pre-ReLU (after dropout), post-ReLU
};

class SwiGLU {
 public:
  SwiGLU() = default;
  // `<prefix>.up.weight` [2n, d], `<prefix>.proj.weight` [d, n], Uniform(±init_range).
  SwiGLU(ParameterSet& params, const std::string& prefix, int64_t hidden, int64_t expansion, double dropout,
         double init_range);
  Tensor forward(const Tensor& x, Context& ctx);
  Tensor backward(const Tensor& dz);
  void release();

 private:
  Linear up_, proj_;
  Dropout drop_hidden_, drop_out_;
  int64_t width_ = 0;
  Tensor a_, b_, silu_a_;
};

// The FFN a DANet layer uses, chosen by `swiglu_ffn`.
class DanetFFN {
 public:
  DanetFFN() = default;
  DanetFFN(ParameterSet& params, const std::string& prefix, int64_t hidden, int64_t expansion, bool swiglu,
           double dropout, double init_range);
  Tensor forward(const Tensor& x, Context& ctx) { return swiglu_ ? glu_.forward(x, ctx) : expanded_.forward(x, ctx); }
  Tensor backward(const Tensor& dz) { return swiglu_ ? glu_.backward(dz) : expanded_.backward(dz); }
  void release() { swiglu_ ? glu_.release() : expanded_.release(); }

 private:
  bool swiglu_ = false;
  ExpandedFFN expanded_;
  SwiGLU glu_;
};

}  // namespace dense::nn
