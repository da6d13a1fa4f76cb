#include "models/encoder_model.h"

#include "backend/ops.h"

namespace dense::models {

namespace {
// [a; b] along the first dim (the two documents of a matching batch run as one batch of 2B).
Tensor cat_rows(const Tensor& a, const Tensor& b) {
  Shape shape = a.shape();
  shape[0] += b.size(0);
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  out.slice(0, 0, a.size(0)).copy_(a);
  out.slice(0, a.size(0), shape[0]).copy_(b);
  return out;
}
}  // namespace

Outputs EncoderModel::forward(const Batch& batch, nn::Context& ctx) {
  DENSE_CHECK(batch.input_ids.defined() && batch.input_ids.dim() == 2,
              "batch.input_ids must be [batch, length], got {}",
              batch.input_ids.defined() ? batch.input_ids.str() : "nothing");
  pairs_ = batch.input_ids2.defined();
  DENSE_CHECK(!pairs_ || config_.pair_matching,
              "the batch has a second document (input_ids2) but the model has no matching head (pair_matching: false)");
  DENSE_CHECK(pairs_ || !config_.pair_matching,
              "a pair_matching model needs the second document of every example (input_ids2)");
  Tensor ids = batch.input_ids;
  Tensor mask = batch.attention_mask;
  Tensor types = batch.token_type_ids;
  if (pairs_) {
    DENSE_CHECK(batch.input_ids2.shape() == ids.shape(), "input_ids2 {} must have the shape of input_ids {}",
                batch.input_ids2.str(), ids.str());
    DENSE_CHECK(!batch.mlm_labels.defined(), "MLM labels are not supported with two documents per example");
    ids = cat_rows(ids.to(DType::I64), batch.input_ids2.to(DType::I64));
    if (mask.defined() || batch.attention_mask2.defined()) {
      const Tensor ones = Tensor::full(batch.input_ids.shape(), 1.0, DType::F32);
      mask = cat_rows(mask.defined() ? mask.to(DType::F32) : ones,
                      batch.attention_mask2.defined() ? batch.attention_mask2.to(DType::F32) : ones);
    }
    if (types.defined() || batch.token_type_ids2.defined()) {
      const Tensor zeros = Tensor::zeros(batch.input_ids.shape(), DType::I64);
      types = cat_rows(types.defined() ? types.to(DType::I64) : zeros,
                       batch.token_type_ids2.defined() ? batch.token_type_ids2.to(DType::I64) : zeros);
    }
  }
  const int64_t B = ids.size(0), N = ids.size(1);
  dtype_ = params_.dtype();
  const Device device = params_.device();
  training_ = ctx.training;
  mask_ = Tensor();
  if (mask.defined()) {
    DENSE_CHECK(mask.shape() == ids.shape(), "attention_mask {} does not match input_ids {}", mask.str(), ids.str());
    mask_ = mask.to(device).to(dtype_).contiguous();
  }
  prepare_masks(mask_, B, N, dtype_, device);

  Outputs out;
  Tensor x = embeddings_.forward(ids.to(device), types.defined() ? types.to(device) : Tensor(), dtype_, ctx);
  const int64_t L = num_layers();
  layer_inputs_.assign(size_t(L), Tensor());
  layer_rng_.assign(size_t(L), Generator());
  for (int64_t l = 0; l < L; ++l) {
    if (recompute_) {
      layer_inputs_[size_t(l)] = x;
      layer_rng_[size_t(l)] = ctx.rng;
    }
    x = with_context(fmt::format("layer {}", l), [&] { return layer_forward(l, x, ctx); });
    if (recompute_) layer_release(l);
  }
  out.sequence_output = final_norm_.forward(x);
  seq_shape_ = out.sequence_output.shape();

  has_mlm_ = batch.mlm_labels.defined();
  if (has_mlm_) {
    out.mlm_logits = mlm_.forward(out.sequence_output, batch.mlm_labels.to(device));
    out.mlm_loss = mlm_.loss();
    out.mlm_count = mlm_.count();
  }
  has_class_loss_ = batch.class_labels.defined();
  if (has_class_loss_ || batch.want_pooled || pairs_) {
    out.pooled = pooler_.forward(out.sequence_output, mask_);
    if (pairs_) {
      const int64_t half = B / 2;
      out.class_logits = matching_.forward(out.pooled.slice(0, 0, half), out.pooled.slice(0, half, B), ctx);
      if (has_class_loss_) out.class_loss = matching_.loss(batch.class_labels.to(device));
    } else {
      out.class_logits = classifier_.forward(out.pooled, ctx);
      if (has_class_loss_) out.class_loss = classifier_.loss(batch.class_labels.to(device));
    }
  }
  out.loss = out.mlm_loss + out.class_loss;
  return out;
}

void EncoderModel::backward(double scale) {
  DENSE_CHECK(!seq_shape_.empty(), "backward() before forward()");
  DENSE_CHECK(has_mlm_ || has_class_loss_, "backward() needs a loss: give mlm_labels or class_labels");
  Tensor dseq = Tensor::zeros(seq_shape_, dtype_, params_.device());
  if (has_mlm_) mlm_.backward(scale, dseq);
  if (has_class_loss_ && pairs_) {
    const auto [dp1, dp2] = matching_.backward(scale);
    pooler_.backward(cat_rows(dp1, dp2), dseq);
  } else if (has_class_loss_) {
    pooler_.backward(classifier_.backward(scale), dseq);
  }
  Tensor dx = final_norm_.backward(dseq);
  for (int64_t l = num_layers() - 1; l >= 0; --l) {
    if (recompute_) {
      nn::Context replay{training_, layer_rng_[size_t(l)]};
      layer_forward(l, layer_inputs_[size_t(l)], replay);
    }
    dx = layer_backward(l, dx);
    if (recompute_) layer_release(l);
    if (layer_hook_) layer_hook_(l);
  }
  embeddings_.backward(dx);
}

}  // namespace dense::models
