#include "nn/softmax_attention.h"

#include <cmath>

#include "backend/ops.h"

namespace dense::nn {

namespace {

// [B, N, H·e] -> [B·H, N, e]: one contiguous copy so every head is a plain matrix of one batched GEMM.
Tensor split_heads(const Tensor& t, int64_t heads) {
  const int64_t b = t.size(0), n = t.size(1), e = t.size(2) / heads;
  return t.view({b, n, heads, e}).transpose(1, 2).contiguous().view({b * heads, n, e});
}

// [B·H, N, e] -> [B, N, H·e].
Tensor merge_heads(const Tensor& t, int64_t batch) {
  const int64_t heads = t.size(0) / batch, n = t.size(1), e = t.size(2);
  return t.view({batch, heads, n, e}).transpose(1, 2).contiguous().view({batch, n, heads * e});
}

}  // namespace

SoftmaxAttention::SoftmaxAttention(ParameterSet& params, const std::string& prefix,
                                   const SoftmaxAttentionConfig& config)
    : config_(config), out_drop_(config.output_dropout) {
  DENSE_CHECK(config.hidden > 0 && config.heads > 0 && config.hidden % config.heads == 0,
              "{}: hidden size {} is not divisible by {} heads", prefix, config.hidden, config.heads);
  DENSE_CHECK(config.attn_dropout >= 0.0 && config.attn_dropout < 1.0 && config.output_dropout >= 0.0 &&
                  config.output_dropout < 1.0,
              "{}: dropout probabilities must be in [0, 1), got {} and {}", prefix, config.attn_dropout,
              config.output_dropout);
  if (config.sparse) {
    validate_pattern_spec(*config.sparse, prefix + ": attention pattern");
    DENSE_CHECK(config.attn_dropout == 0.0,
                "{}: sparse attention has no dropout on the probabilities; set "
                "attention_probs_dropout_prob to 0 (got {})",
                prefix, config.attn_dropout);
  }
  const int64_t d = config.hidden;
  const Init w = Init::normal(config.init_std);
  query_ = Linear(params, prefix + ".query", d, d, config.bias, w);
  key_ = Linear(params, prefix + ".key", d, d, config.bias, w);
  value_ = Linear(params, prefix + ".value", d, d, config.bias, w);
  output_ = Linear(params, prefix + ".output", d, d, config.bias, Init::normal(config.output_init_std));
}

Tensor SoftmaxAttention::forward(const Tensor& x, const Tensor* key_valid, Context& ctx) {
  const int64_t d = config_.hidden, heads = config_.heads;
  DENSE_CHECK(x.dim() == 3 && x.size(2) == d, "softmax attention: input {} is not [B, N, {}]", x.str(), d);
  batch_ = x.size(0);
  seq_ = x.size(1);
  Tensor mask;
  if (key_valid) {
    DENSE_CHECK(key_valid->dim() == 2 && key_valid->size(0) == batch_ && key_valid->size(1) == seq_,
                "softmax attention: key mask {} does not fit input {}", key_valid->str(), x.str());
    mask = key_valid->contiguous();
  }
  const Tensor xc = x.contiguous();
  if (config_.sparse) return sparse_forward(xc, key_valid ? &mask : nullptr, ctx);
  q_ = split_heads(query_.forward(xc), heads);
  k_ = split_heads(key_.forward(xc), heads);
  v_ = split_heads(value_.forward(xc), heads);

  const double scale = 1.0 / std::sqrt(double(d / heads));
  {
    const Tensor s = ops::matmul(q_, false, k_, true);
    p_ = Tensor::empty(s.shape(), s.dtype(), s.device());
    ops::softmax_forward(s, scale, key_valid ? &mask : nullptr, heads, p_);
  }
  // Backward recomputes the dropped probabilities from p_ and the draw rather than keeping a second N x N.
  attn_draw_ = draw_dropout(ctx, config_.attn_dropout, p_.numel());
  const Tensor pd = attn_draw_.active() ? ops::dropout(p_, attn_draw_.p, attn_draw_.seed, attn_draw_.offset) : p_;
  const Tensor c = merge_heads(ops::matmul(pd, false, v_, false), batch_);
  return out_drop_.forward(output_.forward(c), ctx);
}

Tensor SoftmaxAttention::backward(const Tensor& dy) {
  DENSE_CHECK(p_.defined() || o_.defined(), "softmax attention: backward without a saved forward");
  const int64_t d = config_.hidden, heads = config_.heads;
  DENSE_CHECK(dy.dim() == 3 && dy.size(0) == batch_ && dy.size(1) == seq_ && dy.size(2) == d,
              "softmax attention: output gradient {} does not match the forward [{}, {}, {}]", dy.str(), batch_, seq_,
              d);
  if (config_.sparse) return sparse_backward(dy);
  const Tensor dc = split_heads(output_.backward(out_drop_.backward(dy.contiguous())), heads);
  const bool drop = attn_draw_.active();
  const Tensor pd = drop ? ops::dropout(p_, attn_draw_.p, attn_draw_.seed, attn_draw_.offset) : p_;
  const Tensor dv = ops::matmul(pd, true, dc, false);
  Tensor dp = ops::matmul(dc, false, v_, true);
  if (drop) dp = ops::dropout(dp, attn_draw_.p, attn_draw_.seed, attn_draw_.offset);

  const double scale = 1.0 / std::sqrt(double(d / heads));
  Tensor ds = Tensor::empty(p_.shape(), p_.dtype(), p_.device());
  ops::softmax_backward(p_, dp, scale, ds);
  dp = Tensor();
  const Tensor dq = ops::matmul(ds, false, k_, false);
  const Tensor dk = ops::matmul(ds, true, q_, false);

  Tensor dx = Tensor::empty({batch_, seq_, d}, dy.dtype(), dy.device());
  query_.backward(merge_heads(dq, batch_), &dx, 0.0);
  key_.backward(merge_heads(dk, batch_), &dx, 1.0);
  value_.backward(merge_heads(dv, batch_), &dx, 1.0);
  return dx;
}

Tensor SoftmaxAttention::sparse_forward(const Tensor& x, const Tensor* mask, Context& ctx) {
  const int64_t heads = config_.heads;
  q_ = query_.forward(x).contiguous();
  k_ = key_.forward(x).contiguous();
  v_ = value_.forward(x).contiguous();
  mask_ = mask ? *mask : Tensor();
  const DeviceGraph& g = graph_.get(*config_.sparse, seq_, heads, config_.layer_index, x.device());
  o_ = Tensor::empty(q_.shape(), q_.dtype(), q_.device());
  lse_ = Tensor::empty({batch_, heads, seq_}, ops::rownorm_stats_dtype(q_.dtype()), q_.device());
  const double scale = 1.0 / std::sqrt(double(config_.hidden / heads));
  ops::graph_attention_forward(GraphScore::Softmax, q_, k_, v_, g.forward_ref(), mask ? &mask_ : nullptr, heads, scale,
                               o_, &lse_);
  return out_drop_.forward(output_.forward(o_), ctx);
}

Tensor SoftmaxAttention::sparse_backward(const Tensor& dy) {
  DENSE_CHECK(o_.defined(), "softmax attention: backward without a saved forward");
  const int64_t heads = config_.heads;
  const Tensor dc = output_.backward(out_drop_.backward(dy.contiguous())).contiguous();
  const DeviceGraph& g = graph_.get(*config_.sparse, seq_, heads, config_.layer_index, dy.device());
  Tensor dq = Tensor::empty(q_.shape(), q_.dtype(), q_.device());
  Tensor dk = Tensor::empty(k_.shape(), k_.dtype(), k_.device());
  Tensor dv = Tensor::empty(v_.shape(), v_.dtype(), v_.device());
  const double scale = 1.0 / std::sqrt(double(config_.hidden / heads));
  ops::graph_attention_backward(GraphScore::Softmax, q_, k_, v_, g.forward_ref(), g.transposed_ref(),
                                mask_.defined() ? &mask_ : nullptr, heads, scale, o_, dc, &lse_, dq, dk, dv);
  Tensor dx = Tensor::empty({batch_, seq_, config_.hidden}, dy.dtype(), dy.device());
  query_.backward(dq, &dx, 0.0);
  key_.backward(dk, &dx, 1.0);
  value_.backward(dv, &dx, 1.0);
  return dx;
}

void SoftmaxAttention::release() {
  query_.release();
  key_.release();
  value_.release();
  output_.release();
  q_ = k_ = v_ = p_ = o_ = lse_ = mask_ = Tensor();
}

}  // namespace dense::nn
