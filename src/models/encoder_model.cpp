#include "models/encoder_model.h"

#include "backend/ops.h"

namespace dense::models {

Outputs EncoderModel::forward(const Batch& batch, nn::Context& ctx) {
  const Tensor& ids = batch.input_ids;
  DENSE_CHECK(ids.defined() && ids.dim() == 2, "batch.input_ids must be [batch, length], got {}",
              ids.defined() ? ids.str() : "nothing");
  const int64_t B = ids.size(0), N = ids.size(1);
  dtype_ = params_.dtype();
  const Device device = params_.device();
  training_ = ctx.training;
  mask_ = Tensor();
  if (batch.attention_mask.defined()) {
    DENSE_CHECK(batch.attention_mask.shape() == ids.shape(), "attention_mask {} does not match input_ids {}",
                batch.attention_mask.str(), ids.str());
    mask_ = batch.attention_mask.to(device).to(dtype_).contiguous();
  }
  prepare_masks(mask_, B, N, dtype_, device);

  Outputs out;
  Tensor x = embeddings_.forward(ids.to(device), batch.token_type_ids.defined() ? batch.token_type_ids.to(device)
                                                                                : Tensor(),
                                 dtype_, ctx);
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
  if (has_class_loss_ || batch.want_pooled) {
    out.pooled = pooler_.forward(out.sequence_output, mask_);
    out.class_logits = classifier_.forward(out.pooled, ctx);
    if (has_class_loss_) out.class_loss = classifier_.loss(batch.class_labels.to(device));
  }
  out.loss = out.mlm_loss + out.class_loss;
  return out;
}

void EncoderModel::backward(double scale) {
  DENSE_CHECK(!seq_shape_.empty(), "backward() before forward()");
  DENSE_CHECK(has_mlm_ || has_class_loss_, "backward() needs a loss: give mlm_labels or class_labels");
  Tensor dseq = Tensor::zeros(seq_shape_, dtype_, params_.device());
  if (has_mlm_) mlm_.backward(scale, dseq);
  if (has_class_loss_) pooler_.backward(classifier_.backward(scale), dseq);
  Tensor dx = final_norm_.backward(dseq);
  for (int64_t l = num_layers() - 1; l >= 0; --l) {
    if (recompute_) {
      nn::Context replay{training_, layer_rng_[size_t(l)]};
      layer_forward(l, layer_inputs_[size_t(l)], replay);
    }
    dx = layer_backward(l, dx);
    if (recompute_) layer_release(l);
  }
  embeddings_.backward(dx);
}

}  // namespace dense::models
