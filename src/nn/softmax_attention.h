#pragma once
// Multi-head softmax self-attention of the BERT baseline (docs/model.md §1.12, tests/reference/bert_reference.py):
//   Q, K, V = X W_{q,k,v}ᵀ (+ b), split into H heads of e = d / H;
//   P = softmax(Q Kᵀ / sqrt(e)) per head, keys with key_valid = 0 excluded (a query with no valid key gets a
//       zero row), then Dropout(attn_dropout) on P in training mode only;
//   Y = Dropout(output_dropout)(merge_heads(P V) W_oᵀ (+ b_o)).
// Unlike the original reference repo, the padding mask is applied and eval mode never drops probabilities.
//
// The N x N probabilities are materialised ([B·H, N, N]); the dropout mask on them is the Philox draw of
// element (b·H + h, i, j) at flat index ((b·H + h)·N + i)·N + j, so a fused kernel can reproduce it.
#include <optional>
#include <string>

#include "nn/attention_patterns.h"
#include "nn/context.h"
#include "nn/device_graph.h"
#include "nn/linear.h"
#include "nn/parameter.h"

namespace dense::nn {

struct SoftmaxAttentionConfig {
  int64_t hidden = 0;
  int64_t heads = 1;
  double attn_dropout = 0.0;    // on the probabilities (training only)
  double output_dropout = 0.0;  // on the output projection (the residual-branch dropout)
  bool bias = true;
  double init_std = 0.02;
  double output_init_std = 0.02;  // spec: 0.02 / sqrt(2 L)
  // Graph-processing sparse attention over the pattern's edges (no N x N; attn_dropout must be 0). Keys with
  // key_valid = 0 are skipped as in the dense path.
  std::optional<PatternSpec> sparse;
  int64_t layer_index = 0;
};

class SoftmaxAttention {
 public:
  SoftmaxAttention() = default;
  // `<prefix>.{query,key,value,output}.weight` [d, d] (+ `.bias` [d]).
  SoftmaxAttention(ParameterSet& params, const std::string& prefix, const SoftmaxAttentionConfig& config);

  // x [B, N, d]; key_valid [B, N] in x's dtype (nonzero = real token) or null for no mask.
  Tensor forward(const Tensor& x, const Tensor* key_valid, Context& ctx);
  // Returns dx; accumulates the parameter gradients.
  Tensor backward(const Tensor& dy);
  void release();

  const SoftmaxAttentionConfig& config() const { return config_; }

 private:
  Tensor sparse_forward(const Tensor& x, const Tensor* mask, Context& ctx);
  Tensor sparse_backward(const Tensor& dy);

  SoftmaxAttentionConfig config_;
  Linear query_, key_, value_, output_;
  Dropout out_drop_;
  DropoutDraw attn_draw_;
  int64_t batch_ = 0, seq_ = 0;
  // Per-head copies [B·H, N, e] and the probabilities before dropout [B·H, N, N]; sparse: q_, k_, v_, o_ stay
  // [B, N, d], with the row log-sum-exps lse_ [B, H, N] and the key mask.
  Tensor q_, k_, v_, p_, o_, lse_, mask_;
  PatternGraphCache graph_;
};

}  // namespace dense::nn
