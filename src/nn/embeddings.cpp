#include "nn/embeddings.h"

#include <cmath>
#include <vector>

#include "backend/ops.h"

namespace dense::nn {

Tensor sinusoidal_table(int64_t positions, int64_t hidden, DType dtype, Device device) {
  std::vector<double> t(size_t(positions * hidden));
  for (int64_t p = 0; p < positions; ++p)
    for (int64_t c = 0; c < hidden; ++c) {
      const double w = std::pow(10000.0, -2.0 * double(c / 2) / double(hidden));
      t[size_t(p * hidden + c)] = c % 2 == 0 ? std::sin(double(p) * w) : std::cos(double(p) * w);
    }
  return Tensor::from_vector(t, {positions, hidden}, dtype, device);
}

Embeddings::Embeddings(ParameterSet& params, const std::string& prefix, const EmbeddingsConfig& cfg)
    : cfg_(cfg), norm_(params, prefix + ".norm", cfg.norm, cfg.hidden), dropout_(cfg.dropout) {
  word_ = params.add(prefix + ".word_embeddings.weight", {cfg.vocab, cfg.hidden}, ParamKind::Embedding, cfg.word_init);
  if (cfg.positions == PositionKind::Learned)
    position_ = params.add(prefix + ".position_embeddings.weight", {cfg.max_positions, cfg.hidden},
                           ParamKind::Embedding, cfg.table_init);
  if (cfg.type_vocab > 0)
    token_type_ = params.add(prefix + ".token_type_embeddings.weight", {cfg.type_vocab, cfg.hidden},
                             ParamKind::Embedding, cfg.table_init);
}

Tensor Embeddings::forward(const Tensor& ids, const Tensor& token_types, DType dtype, Context& ctx) {
  DENSE_CHECK(ids.dim() == 2 && ids.dtype() == DType::I64, "input_ids must be i64 [batch, length], got {}", ids.str());
  batch_ = ids.size(0);
  length_ = ids.size(1);
  const int64_t d = cfg_.hidden;
  if (cfg_.positions != PositionKind::None)
    DENSE_CHECK(length_ <= cfg_.max_positions, "sequence length {} exceeds max_position_embeddings {}", length_,
                cfg_.max_positions);
  ids_ = ids.contiguous();
  Tensor x = Tensor::empty({batch_, length_, d}, dtype, word_->value.device());
  ops::gather_rows(word_->value, ids_, 0.0, x);
  Tensor rows = x.view({batch_, length_ * d});
  if (cfg_.positions == PositionKind::Learned) {
    ops::binary(BinaryOp::Add, Broadcast::Row, 1.0, rows, position_->value.slice(0, 0, length_), 0.0, rows);
  } else if (cfg_.positions == PositionKind::Sinusoidal) {
    if (!sinusoid_.defined() || sinusoid_.dtype() != dtype)
      sinusoid_ = sinusoidal_table(cfg_.max_positions, d, dtype, x.device());
    ops::binary(BinaryOp::Add, Broadcast::Row, 1.0, rows, sinusoid_.slice(0, 0, length_), 0.0, rows);
  }
  if (token_type_) {
    types_ = token_types.defined() ? token_types.contiguous() : Tensor::zeros(ids.shape(), DType::I64, x.device());
    DENSE_CHECK(types_.shape() == ids.shape() && types_.dtype() == DType::I64,
                "token_type_ids must be i64 {} like input_ids, got {}", shape_str(ids.shape()), types_.str());
    ops::gather_rows(token_type_->value, types_, 1.0, x);
  }
  return dropout_.forward(norm_.forward(x), ctx);
}

void Embeddings::backward(const Tensor& dy) {
  const Tensor dx = norm_.backward(dropout_.backward(dy)).contiguous();
  ops::scatter_add_rows(dx, ids_, word_->grad);
  if (position_) {
    Tensor dpos = position_->grad.slice(0, 0, length_);
    ops::sum_rows(dx, 1, batch_, 1.0, 1.0, dpos);
  }
  if (token_type_) ops::scatter_add_rows(dx, types_, token_type_->grad);
}

void Embeddings::release() {
  norm_.release();
  ids_ = Tensor();
  types_ = Tensor();
}

}  // namespace dense::nn
