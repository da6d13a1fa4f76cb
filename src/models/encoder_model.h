#pragma once
// The part DANet and BERT share: embeddings → layers → final norm → heads, with the per-layer recompute
// bookkeeping. Subclasses supply the layers.
#include <vector>

#include "models/model.h"
#include "nn/embeddings.h"
#include "nn/heads.h"
#include "nn/norm.h"

namespace dense::models {

class EncoderModel : public Model {
 public:
  Outputs forward(const Batch& batch, nn::Context& ctx) override;
  void backward(double scale) override;

 protected:
  explicit EncoderModel(const ModelConfig& config) : Model(config) {}
  // Called once per forward with the float mask [B, N] (undefined when every token is real).
  virtual void prepare_masks(const Tensor& mask, int64_t batch, int64_t length, DType dtype, Device device) = 0;
  virtual int64_t num_layers() const = 0;
  virtual Tensor layer_forward(int64_t layer, const Tensor& x, nn::Context& ctx) = 0;
  virtual Tensor layer_backward(int64_t layer, const Tensor& dy) = 0;
  virtual void layer_release(int64_t layer) = 0;

  nn::Embeddings embeddings_;
  nn::Norm final_norm_;
  nn::MlmHead mlm_;
  nn::Pooler pooler_;
  nn::Classifier classifier_;
  nn::MatchingHead matching_;  // replaces the classifier when config_.pair_matching

 private:
  // Saved by forward for backward.
  Tensor mask_;
  Shape seq_shape_;
  DType dtype_ = DType::F32;
  bool has_mlm_ = false, has_class_loss_ = false, pairs_ = false;
  bool training_ = false;
  std::vector<Tensor> layer_inputs_;
  std::vector<Generator> layer_rng_;
};

}  // namespace dense::models
