#pragma once
// One pre-LN encoder layer of the softmax BERT baseline (docs/model.md §1.12, tests/reference/bert_reference.py):
//   X' = X + Dropout(O-proj(MHA(LN1 X)))
//   Y  = X' + Dropout(dense_out(act(dense_in(LN2 X'))))
// with LayerNorms that have a bias and Linear layers that all have biases.
#include <optional>
#include <string>

#include "nn/context.h"
#include "nn/linear.h"
#include "nn/norm.h"
#include "nn/parameter.h"
#include "nn/softmax_attention.h"

namespace dense::nn {

struct BertLayerConfig {
  int64_t hidden = 0;
  int64_t heads = 1;
  int64_t intermediate = 0;
  double hidden_dropout = 0.0;  // both residual branches
  double attn_dropout = 0.0;    // attention probabilities (training only)
  double ln_eps = 1e-12;
  NormSpec act;  // parse_activation(hidden_act)
  double init_std = 0.02;
  double output_init_std = 0.02;      // attention output and dense_out: spec 0.02 / sqrt(2 L)
  std::optional<PatternSpec> sparse;  // graph-processing sparse attention (SoftmaxAttentionConfig::sparse)
  int64_t layer_index = 0;
};

class BertLayer {
 public:
  BertLayer() = default;
  // `<prefix>.attention_norm.{weight,bias}`, `<prefix>.attention.{query,key,value,output}.{weight,bias}`,
  // `<prefix>.ffn_norm.{weight,bias}`, `<prefix>.ffn.dense_in.{weight,bias}` [I, d], [I],
  // `<prefix>.ffn.dense_out.{weight,bias}` [d, I], [d].
  BertLayer(ParameterSet& params, const std::string& prefix, const BertLayerConfig& config);

  // x [B, N, d]; key_valid [B, N] in x's dtype (nonzero = real token) or null.
  Tensor forward(const Tensor& x, const Tensor* key_valid, Context& ctx);
  // Returns dx; accumulates the parameter gradients.
  Tensor backward(const Tensor& dy);
  void release();

  const BertLayerConfig& config() const { return config_; }

 private:
  BertLayerConfig config_;
  Norm attention_norm_, ffn_norm_;
  SoftmaxAttention attention_;
  Linear dense_in_, dense_out_;
  Norm act_;
  Dropout ffn_drop_;
};

}  // namespace dense::nn
