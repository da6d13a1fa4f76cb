#pragma once
// One DANet layer (docs/model.md §1.1 eqs. 1–4): X + PostNorm(FFN(DenseAttention(PreNorm(X) ⊙ m))). There is no
// residual or norm between attention and FFN, and no attention mask: padding enters only through m.
#include <string>

#include "nn/context.h"
#include "nn/dense_attention.h"
#include "nn/ffn.h"
#include "nn/norm.h"
#include "nn/parameter.h"
#include "nn/relpe.h"

namespace dense::nn {

struct DanetLayerConfig {
  DenseAttentionConfig attention;
  NormSpec pre_norm, post_norm;
  int64_t expansion = 4;
  bool swiglu = false;
  double hidden_dropout = 0.0;
  double init_range = 0.02;
  double queries_init_std = 0.0;
};

class DanetLayer {
 public:
  DanetLayer() = default;
  DanetLayer(ParameterSet& params, const std::string& prefix, const DanetLayerConfig& cfg, const RelPE* relpe);
  // x [B, N, d]; m [B * N]: the per-token scale of §1.4 for this layer's kind (global or local).
  Tensor forward(const Tensor& x, const Tensor& m, Context& ctx);
  Tensor backward(const Tensor& dy);
  void release();
  bool is_global() const { return cfg_.attention.kind == LayerKind::Global; }

 private:
  DanetLayerConfig cfg_;
  Norm pre_, post_;
  DenseAttention attention_;
  DanetFFN ffn_;
  Tensor m_;
};

}  // namespace dense::nn
