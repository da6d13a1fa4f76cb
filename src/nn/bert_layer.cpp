#include "nn/bert_layer.h"

#include "backend/ops.h"

namespace dense::nn {

BertLayer::BertLayer(ParameterSet& params, const std::string& prefix, const BertLayerConfig& config)
    : config_(config), ffn_drop_(config.hidden_dropout) {
  DENSE_CHECK(config.intermediate > 0, "{}: intermediate size must be positive, got {}", prefix, config.intermediate);
  DENSE_CHECK(config.act.kind != NormSpec::Row, "{}: the FFN activation must be an activation, not a norm", prefix);
  DENSE_CHECK(config.hidden_dropout >= 0.0 && config.hidden_dropout < 1.0,
              "{}: hidden dropout must be in [0, 1), got {}", prefix, config.hidden_dropout);
  const int64_t d = config.hidden, inter = config.intermediate;
  attention_norm_ = Norm(params, prefix + ".attention_norm", layer_norm_spec(config.ln_eps), d);
  SoftmaxAttentionConfig ac;
  ac.hidden = d;
  ac.heads = config.heads;
  ac.attn_dropout = config.attn_dropout;
  ac.output_dropout = config.hidden_dropout;
  ac.bias = true;
  ac.init_std = config.init_std;
  ac.output_init_std = config.output_init_std;
  ac.sparse = config.sparse;
  ac.layer_index = config.layer_index;
  attention_ = SoftmaxAttention(params, prefix + ".attention", ac);
  ffn_norm_ = Norm(params, prefix + ".ffn_norm", layer_norm_spec(config.ln_eps), d);
  dense_in_ = Linear(params, prefix + ".ffn.dense_in", d, inter, true, Init::normal(config.init_std));
  act_ = Norm(params, prefix + ".ffn.act", config.act, inter);  // an activation declares no parameters
  dense_out_ = Linear(params, prefix + ".ffn.dense_out", inter, d, true, Init::normal(config.output_init_std));
}

Tensor BertLayer::forward(const Tensor& x, const Tensor* key_valid, Context& ctx) {
  DENSE_CHECK(x.dim() == 3 && x.size(2) == config_.hidden, "BERT layer: input {} is not [B, N, {}]", x.str(),
              config_.hidden);
  const Tensor xc = x.contiguous();
  const Tensor x1 = ops::add(xc, attention_.forward(attention_norm_.forward(xc), key_valid, ctx));
  const Tensor f = dense_out_.forward(act_.forward(dense_in_.forward(ffn_norm_.forward(x1))));
  return ops::add(x1, ffn_drop_.forward(f, ctx));
}

Tensor BertLayer::backward(const Tensor& dy_in) {
  const Tensor dy = dy_in.contiguous();
  const Tensor dh2 = dense_in_.backward(act_.backward(dense_out_.backward(ffn_drop_.backward(dy))));
  // dX' = dY + LN2ᵀ(dh2), accumulated in place by the norm backward (beta = 1).
  Tensor dx1 = dy.clone();
  ffn_norm_.backward(dh2, dx1, 1.0);
  const Tensor dh1 = attention_.backward(dx1);
  Tensor dx = dx1;
  attention_norm_.backward(dh1, dx, 1.0);
  return dx;
}

void BertLayer::release() {
  attention_norm_.release();
  attention_.release();
  ffn_norm_.release();
  dense_in_.release();
  act_.release();
  dense_out_.release();
}

}  // namespace dense::nn
