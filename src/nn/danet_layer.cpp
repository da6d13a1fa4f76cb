#include "nn/danet_layer.h"

#include "backend/ops.h"

namespace dense::nn {

DanetLayer::DanetLayer(ParameterSet& params, const std::string& prefix, const DanetLayerConfig& cfg, const RelPE* relpe)
    : cfg_(cfg),
      pre_(params, prefix + ".pre_norm", cfg.pre_norm, cfg.attention.hidden),
      post_(params, prefix + ".post_norm", cfg.post_norm, cfg.attention.hidden) {
  attention_ = DenseAttention(params, prefix + ".attention", cfg.attention, relpe, cfg.queries_init_std);
  ffn_ = DanetFFN(params, prefix + ".ffn", cfg.attention.hidden, cfg.expansion, cfg.swiglu, cfg.hidden_dropout,
                  cfg.init_range);
}

Tensor DanetLayer::forward(const Tensor& x, const Tensor& m, Context& ctx) {
  m_ = m;
  const Tensor a = ops::scale_rows(pre_.forward(x), m);
  const Tensor y = attention_.forward(a, ctx);
  const Tensor z = post_.forward(ffn_.forward(y, ctx));
  return ops::add(x.contiguous(), z.contiguous());
}

Tensor DanetLayer::backward(const Tensor& dy) {
  const Tensor dz = post_.backward(dy);
  const Tensor da = ops::scale_rows(attention_.backward(ffn_.backward(dz)).contiguous(), m_);
  Tensor dx = dy.contiguous().clone();  // the residual path
  pre_.backward(da, dx, 1.0);
  return dx;
}

void DanetLayer::release() {
  pre_.release();
  post_.release();
  attention_.release();
  ffn_.release();
}

}  // namespace dense::nn
