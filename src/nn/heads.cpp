#include "nn/heads.h"

#include <vector>

#include "backend/ops.h"

namespace dense::nn {

MlmHead::MlmHead(ParameterSet& params, const std::string& prefix, const MlmHeadConfig& cfg, Parameter* word)
    : cfg_(cfg),
      dense_(params, prefix + ".transform.dense", cfg.hidden, cfg.hidden, cfg.dense_bias, cfg.dense_init),
      act_(params, prefix + ".transform.act", cfg.act, cfg.hidden),
      norm_(params, prefix + ".transform.norm", cfg.norm, cfg.hidden),
      word_(word) {
  bias_ = params.add(prefix + ".bias", {cfg.vocab}, ParamKind::Bias, Init::constant(0.0));
}

Tensor MlmHead::forward(const Tensor& seq, const Tensor& labels) {
  DENSE_CHECK(labels.dtype() == DType::I64 && labels.numel() * seq.size(-1) == seq.numel(),
              "mlm labels must be i64 with one label per token, got {} for sequence output {}", labels.str(),
              seq.str());
  seq_shape_ = seq.shape();
  // The masked positions decide the shapes of everything after, so they are read on the host.
  const auto lab = labels.to_vector<int64_t>();
  std::vector<int64_t> rows, targets;
  for (size_t i = 0; i < lab.size(); ++i)
    if (lab[i] != -1) {
      DENSE_CHECK(lab[i] >= 0 && lab[i] < cfg_.vocab, "mlm label {} at flat position {} is outside [0, {})", lab[i], i,
                  cfg_.vocab);
      rows.push_back(int64_t(i));
      targets.push_back(lab[i]);
    }
  count_ = int64_t(rows.size());
  const Device dev = seq.device();
  rows_ = Tensor::from_vector(rows, {count_}, DType::I64, dev);
  targets_ = Tensor::from_vector(targets, {count_}, DType::I64, dev);
  const Tensor selected = ops::gather_rows(seq.contiguous().view({-1, seq.size(-1)}), rows_);
  t_ = norm_.forward(act_.forward(dense_.forward(selected)));
  logits_ = Tensor::empty({count_, cfg_.vocab}, seq.dtype(), dev);
  ops::matmul(t_, false, word_->value, true, logits_);
  ops::binary(BinaryOp::Add, Broadcast::Row, 1.0, logits_, bias_->value, 0.0, logits_);
  return logits_;
}

double MlmHead::loss() {
  if (count_ == 0) return 0.0;
  const DType stat = accumulate_dtype(logits_.dtype());  // f32 statistics for half logits
  Tensor per_row = Tensor::empty({count_}, stat, logits_.device());
  lse_ = Tensor::empty({count_}, stat, logits_.device());
  ops::cross_entropy_forward(logits_, targets_, per_row, lse_);
  return ops::sum(per_row) / double(count_);
}

void MlmHead::backward(double scale, Tensor& dseq) {
  if (count_ == 0) return;
  DENSE_CHECK(lse_.defined(), "MlmHead::backward before loss()");
  Tensor dlogits = Tensor::empty(logits_.shape(), logits_.dtype(), logits_.device());
  ops::cross_entropy_backward(logits_, targets_, lse_, scale / double(count_), dlogits);
  ops::sum_rows(dlogits, 1, count_, 1.0, 1.0, bias_->grad);
  ops::matmul(dlogits, true, t_, false, word_->grad, 1.0, 1.0);  // tied decoder: adds to the word table
  const Tensor dt = ops::matmul(dlogits, false, word_->value, false);
  const Tensor dsel = dense_.backward(act_.backward(norm_.backward(dt)));
  Tensor flat = dseq.view({-1, dseq.size(-1)});
  ops::scatter_add_rows(dsel, rows_, flat);
}

PoolFunction parse_pool_function(const std::string& name, const std::string& field) {
  if (name == "first") return PoolFunction::First;
  if (name == "mean") return PoolFunction::Mean;
  if (name == "max") return PoolFunction::Max;
  if (name == "masked_mean") return PoolFunction::MaskedMean;
  DENSE_FAIL("{}: unknown pooler function '{}'; allowed: first, mean, max, masked_mean", field, name);
}

Pooler::Pooler(ParameterSet& params, const std::string& prefix, const PoolerConfig& cfg) : cfg_(cfg) {
  if (cfg.dense) {
    dense_ = Linear(params, prefix + ".dense", cfg.hidden, cfg.hidden, cfg.dense_bias, cfg.dense_init);
    act_ = Norm(params, prefix + ".act", cfg.act, cfg.hidden);
    norm_ = Norm(params, prefix + ".norm", cfg.norm, cfg.hidden);
  }
}

Tensor Pooler::forward(const Tensor& seq_in, const Tensor& mask) {
  const Tensor seq = seq_in.contiguous();
  seq_shape_ = seq.shape();
  const int64_t B = seq.size(0), N = seq.size(1), d = seq.size(2);
  Tensor pooled;
  switch (cfg_.function) {
    case PoolFunction::First: pooled = seq.select(1, 0).contiguous(); break;
    case PoolFunction::Max: {
      pooled = Tensor::empty({B, d}, seq.dtype(), seq.device());
      argmax_ = Tensor::empty({B, d}, DType::I64, seq.device());
      ops::max_pool_forward(seq, pooled, argmax_);
      break;
    }
    case PoolFunction::Mean:
    case PoolFunction::MaskedMean: {
      // pooled_b = Σ_i w_bi x_bi as one batched GEMM; w = 1/N (mean over all positions, pads included, as
      // the reference) or mask/Σmask (masked_mean).
      if (cfg_.function == PoolFunction::Mean) {
        weights_ = Tensor::full({B, 1, N}, 1.0 / double(N), seq.dtype(), seq.device());
      } else {
        DENSE_CHECK(mask.defined() && mask.numel() == B * N, "masked_mean pooling needs the attention mask");
        const auto m = mask.to_vector<double>();
        std::vector<double> w(m.size());
        for (int64_t b = 0; b < B; ++b) {
          double count = 0;
          for (int64_t i = 0; i < N; ++i) count += m[size_t(b * N + i)];
          DENSE_CHECK(count > 0, "masked_mean pooling: sequence {} has no real token", b);
          for (int64_t i = 0; i < N; ++i) w[size_t(b * N + i)] = m[size_t(b * N + i)] / count;
        }
        weights_ = Tensor::from_vector(w, {B, 1, N}, seq.dtype(), seq.device());
      }
      pooled = Tensor::empty({B, 1, d}, seq.dtype(), seq.device());
      ops::matmul(weights_, false, seq, false, pooled);
      pooled = pooled.view({B, d});
      break;
    }
  }
  if (!cfg_.dense) return pooled;
  return norm_.forward(act_.forward(dense_.forward(pooled)));
}

void Pooler::backward(const Tensor& dpooled_in, Tensor& dseq) {
  Tensor dpooled = cfg_.dense ? dense_.backward(act_.backward(norm_.backward(dpooled_in))) : dpooled_in.contiguous();
  const int64_t B = seq_shape_[0], d = seq_shape_[2];
  switch (cfg_.function) {
    case PoolFunction::First: {
      Tensor first = dseq.select(1, 0);
      first.copy_(ops::add(first.contiguous(), dpooled));
      break;
    }
    case PoolFunction::Max: ops::max_pool_backward(dpooled, argmax_, dseq); break;
    case PoolFunction::Mean:
    case PoolFunction::MaskedMean: ops::matmul(weights_, true, dpooled.view({B, 1, d}), false, dseq, 1.0, 1.0); break;
  }
}

namespace {
// Mean cross entropy over a batch of logits and its gradient (1/B per row); labels checked against the classes.
double classification_loss(const Tensor& logits, const Tensor& labels, int64_t classes, Tensor& grad) {
  const int64_t B = logits.size(0);
  DENSE_CHECK(labels.numel() == B, "class labels: {} labels for a batch of {}", labels.numel(), B);
  DENSE_CHECK(labels.dtype() == DType::I64, "class labels must be i64 for {} classes, got {}", classes, labels.str());
  const Tensor lab = labels.contiguous().view({B});
  const auto host = lab.to_vector<int64_t>();
  for (int64_t b = 0; b < B; ++b)
    DENSE_CHECK(host[size_t(b)] >= 0 && host[size_t(b)] < classes, "class label {} of example {} is outside [0, {})",
                host[size_t(b)], b, classes);
  const DType stat = accumulate_dtype(logits.dtype());  // f32 statistics for half logits
  Tensor per_row = Tensor::empty({B}, stat, logits.device());
  Tensor lse = Tensor::empty({B}, stat, logits.device());
  ops::cross_entropy_forward(logits, lab, per_row, lse);
  grad = Tensor::empty(logits.shape(), logits.dtype(), logits.device());
  ops::cross_entropy_backward(logits, lab, lse, 1.0 / double(B), grad);
  return ops::sum(per_row) / double(B);
}
}  // namespace

Classifier::Classifier(ParameterSet& params, const std::string& prefix, int64_t hidden, int64_t labels, bool bias,
                       double dropout, Init init)
    : linear_(params, prefix, hidden, labels, bias, init), dropout_(dropout), labels_(labels) {}

Tensor Classifier::forward(const Tensor& pooled, Context& ctx) {
  logits_ = linear_.forward(dropout_.forward(pooled, ctx));
  return logits_;
}

double Classifier::loss(const Tensor& labels) {
  const int64_t B = logits_.size(0);
  DENSE_CHECK(labels.numel() == B, "class labels: {} labels for a batch of {}", labels.numel(), B);
  if (labels_ == 1) {
    // Regression (STS-B): MSE against float labels.
    const Tensor target = labels.to(logits_.dtype()).view({B, 1});
    Tensor diff = Tensor::empty({B, 1}, logits_.dtype(), logits_.device());
    ops::binary(BinaryOp::Sub, Broadcast::Full, 1.0, logits_, target, 0.0, diff);
    grad_logits_ = ops::scale(diff, 2.0 / double(B));
    return ops::sum(ops::mul(diff, diff)) / double(B);
  }
  return classification_loss(logits_, labels, labels_, grad_logits_);
}

Tensor Classifier::backward(double scale) {
  DENSE_CHECK(grad_logits_.defined(), "Classifier::backward before loss()");
  const Tensor g = scale == 1.0 ? grad_logits_ : ops::scale(grad_logits_, scale);
  return dropout_.backward(linear_.backward(g));
}

MatchingHead::MatchingHead(ParameterSet& params, const std::string& prefix, int64_t hidden, int64_t labels,
                           double dropout, Init init)
    : dense_(params, prefix + ".dense", 4 * hidden, hidden, false, init),
      out_(params, prefix + ".classifier", hidden, labels, false, init),
      act_(params, prefix + ".act", parse_activation("gelu_tanh", "matching activation"), hidden),
      dropout_(dropout),
      hidden_(hidden),
      labels_(labels) {}

Tensor MatchingHead::forward(const Tensor& p1, const Tensor& p2, Context& ctx) {
  DENSE_CHECK(p1.shape() == p2.shape() && p1.dim() == 2 && p1.size(1) == hidden_,
              "matching head: pooled documents {} and {} must both be [batch, {}]", p1.str(), p2.str(), hidden_);
  p1_ = p1.contiguous();
  p2_ = p2.contiguous();
  const int64_t B = p1.size(0), d = hidden_;
  Tensor h = Tensor::empty({B, 4 * d}, p1.dtype(), p1.device());
  h.slice(1, 0, d).copy_(p1_);
  h.slice(1, d, 2 * d).copy_(p2_);
  h.slice(1, 2 * d, 3 * d).copy_(ops::mul(p1_, p2_));
  Tensor diff = Tensor::empty({B, d}, p1.dtype(), p1.device());
  ops::binary(BinaryOp::Sub, Broadcast::Full, 1.0, p1_, p2_, 0.0, diff);
  h.slice(1, 3 * d, 4 * d).copy_(diff);
  logits_ = out_.forward(dropout_.forward(act_.forward(dense_.forward(h)), ctx));
  return logits_;
}

double MatchingHead::loss(const Tensor& labels) { return classification_loss(logits_, labels, labels_, grad_logits_); }

std::pair<Tensor, Tensor> MatchingHead::backward(double scale) {
  DENSE_CHECK(grad_logits_.defined(), "MatchingHead::backward before loss()");
  const Tensor g = scale == 1.0 ? grad_logits_ : ops::scale(grad_logits_, scale);
  const Tensor dh = dense_.backward(act_.backward(dropout_.backward(out_.backward(g)))).contiguous();
  const int64_t d = hidden_;
  const Tensor d1 = dh.slice(1, 0, d).contiguous(), d2 = dh.slice(1, d, 2 * d).contiguous();
  const Tensor dprod = dh.slice(1, 2 * d, 3 * d).contiguous(), ddiff = dh.slice(1, 3 * d, 4 * d).contiguous();
  // ∂/∂p1 = d1 + dprod ⊙ p2 + ddiff;  ∂/∂p2 = d2 + dprod ⊙ p1 − ddiff.
  Tensor dp1 = ops::add(d1, ddiff);
  ops::binary(BinaryOp::Mul, Broadcast::Full, 1.0, dprod, p2_, 1.0, dp1);
  Tensor dp2 = Tensor::empty(d2.shape(), d2.dtype(), d2.device());
  ops::binary(BinaryOp::Sub, Broadcast::Full, 1.0, d2, ddiff, 0.0, dp2);
  ops::binary(BinaryOp::Mul, Broadcast::Full, 1.0, dprod, p1_, 1.0, dp2);
  return {dp1, dp2};
}

}  // namespace dense::nn
