#pragma once
// Output heads (docs/model.md §1.11): the MLM head with the tied decoder, the pooler, and the classifier/regressor
// with their losses.
#include <string>
#include <utility>

#include "nn/context.h"
#include "nn/linear.h"
#include "nn/norm.h"
#include "nn/parameter.h"

namespace dense::nn {

struct MlmHeadConfig {
  int64_t hidden = 0;
  int64_t vocab = 0;  // padded
  bool dense_bias = false;
  NormSpec act;
  NormSpec norm;
  Init dense_init = Init::uniform(0.02);
};

// Selects the masked rows first (equivalent to the reference's transform-everything-then-select, cheaper),
// then T = norm(act(S Wᵀ)), logits = T Eᵀ + b with E the tied word table.
class MlmHead {
 public:
  MlmHead() = default;
  MlmHead(ParameterSet& params, const std::string& prefix, const MlmHeadConfig& cfg, Parameter* word_embeddings);
  // seq [B, N, d], labels [B, N] i64 (-1: not masked). Returns logits [n_masked, V] (row-major order).
  Tensor forward(const Tensor& seq, const Tensor& labels);
  // Mean cross entropy over the masked rows of the last forward, and its gradient kept for backward.
  double loss();
  int64_t count() const { return count_; }
  // Adds ∂loss/∂seq (times `scale`) into dseq.
  void backward(double scale, Tensor& dseq);
  const Tensor& targets() const { return targets_; }

 private:
  MlmHeadConfig cfg_;
  Linear dense_;
  Norm act_, norm_;
  Parameter* word_ = nullptr;
  Parameter* bias_ = nullptr;
  Tensor rows_, targets_, t_, logits_, lse_;
  int64_t count_ = 0;
  Shape seq_shape_;
};

enum class PoolFunction { First, Mean, Max, MaskedMean };
PoolFunction parse_pool_function(const std::string& name, const std::string& field);

struct PoolerConfig {
  int64_t hidden = 0;
  PoolFunction function = PoolFunction::First;
  bool dense = true;
  bool dense_bias = false;
  NormSpec act;
  NormSpec norm;
  Init dense_init = Init::uniform(0.02);
};

class Pooler {
 public:
  Pooler() = default;
  Pooler(ParameterSet& params, const std::string& prefix, const PoolerConfig& cfg);
  // seq [B, N, d]; mask [B, N] in seq's dtype (used by masked_mean; may be undefined otherwise).
  Tensor forward(const Tensor& seq, const Tensor& mask);
  // Adds ∂/∂seq into dseq.
  void backward(const Tensor& dpooled, Tensor& dseq);

 private:
  PoolerConfig cfg_;
  Linear dense_;
  Norm act_, norm_;
  Tensor weights_, argmax_;  // pooling weights [B, 1, N] (mean variants), argmax [B, d] (max)
  Shape seq_shape_;
};

// Dropout → Linear(d → labels). Loss: mean cross entropy (labels i64), or MSE for one output (labels float).
class Classifier {
 public:
  Classifier() = default;
  Classifier(ParameterSet& params, const std::string& prefix, int64_t hidden, int64_t labels, bool bias, double dropout,
             Init init);
  Tensor forward(const Tensor& pooled, Context& ctx);
  double loss(const Tensor& labels);
  // ∂loss/∂pooled times scale.
  Tensor backward(double scale);

 private:
  Linear linear_;
  Dropout dropout_;
  int64_t labels_ = 0;
  Tensor logits_, grad_logits_;
};

// Dual-document matching (LRA Retrieval / AAN, docs/model.md §1.11): h = [p1, p2, p1⊙p2, p1−p2] → Linear(4d → d, no
// bias) → tanh-GELU → Dropout → Linear(d → labels, no bias) → cross entropy.
class MatchingHead {
 public:
  MatchingHead() = default;
  // `<prefix>.dense.weight` [d, 4d], `<prefix>.classifier.weight` [labels, d].
  MatchingHead(ParameterSet& params, const std::string& prefix, int64_t hidden, int64_t labels, double dropout,
               Init init);
  Tensor forward(const Tensor& p1, const Tensor& p2, Context& ctx);
  double loss(const Tensor& labels);
  // ∂loss/∂p1 and ∂loss/∂p2 times scale.
  std::pair<Tensor, Tensor> backward(double scale);

 private:
  Linear dense_, out_;
  Norm act_;
  Dropout dropout_;
  int64_t hidden_ = 0, labels_ = 0;
  Tensor p1_, p2_, logits_, grad_logits_;
};

}  // namespace dense::nn
