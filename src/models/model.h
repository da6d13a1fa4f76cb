#pragma once
// The encoder models: DANet and the softmax BERT baseline behind one interface. A model owns its parameter
// arena; forward runs the layers in order and saves what backward needs; backward runs them in reverse and
// accumulates gradients (+=) into the arena.
#include <functional>
#include <memory>

#include "core/tensor.h"
#include "models/model_config.h"
#include "nn/context.h"
#include "nn/parameter.h"

namespace dense::models {

struct Batch {
  Tensor input_ids;       // [B, N] i64
  Tensor attention_mask;  // [B, N] (any dtype, 1 = real token) or undefined: all real
  Tensor token_type_ids;  // [B, N] i64 or undefined
  Tensor mlm_labels;      // [B, N] i64, -1 = not predicted; undefined: no MLM head
  Tensor class_labels;    // [B] i64 (classification) or float (regression); undefined: no classifier loss
  // The second document of each example for `pair_matching` models (same shape as input_ids).
  Tensor input_ids2, attention_mask2, token_type_ids2;
  bool want_pooled = false;  // run the pooler and classifier without labels (inference)
};

struct Outputs {
  Tensor sequence_output;  // [B, N, d] after the final norm ([2B, N, d] with two documents: doc 1 rows first)
  Tensor mlm_logits;       // [n_masked, V_padded]
  Tensor pooled;           // [B, d] ([2B, d] with two documents)
  Tensor class_logits;     // [B, num_labels]
  double loss = 0.0;       // mlm_loss + class_loss (the parts present)
  double mlm_loss = 0.0;
  double class_loss = 0.0;
  int64_t mlm_count = 0;
};

class Model {
 public:
  virtual ~Model() = default;
  virtual Outputs forward(const Batch& batch, nn::Context& ctx) = 0;
  // Gradients of the last forward's loss, scaled by `scale` (e.g. 1/accumulation steps), added to the grads.
  virtual void backward(double scale = 1.0) = 0;
  // Activation checkpointing: keep only each layer's input and recompute the layer in backward.
  void set_recompute(bool on) { recompute_ = on; }
  // Called by backward() right after encoder layer `l` (counting down) has added its parameters' gradients:
  // from then on this backward pass does not touch them, so a data-parallel trainer can start reducing them
  // while the layers below run. Empty: nothing is called.
  void set_layer_backward_hook(std::function<void(int64_t layer)> hook) { layer_hook_ = std::move(hook); }
  nn::ParameterSet& params() { return params_; }
  const ModelConfig& config() const { return config_; }

 protected:
  explicit Model(const ModelConfig& config) : config_(config) {}
  ModelConfig config_;
  nn::ParameterSet params_;
  bool recompute_ = false;
  std::function<void(int64_t)> layer_hook_;
};

// Builds, allocates and initialises a model (docs/model.md §1.13 initialisation, Philox seeded).
std::unique_ptr<Model> build_model(const ModelConfig& config, DType dtype, Device device, uint64_t seed = 42);
// Number of parameters the config describes, without allocating them.
int64_t count_parameters(const ModelConfig& config);

}  // namespace dense::models

namespace dense::models {

// Spec §1.3 resize_learned_pos_embeddings: a learned position table of `rows` positions made from one trained
// at another length, the old table tiled (repeated from row 0) and truncated. Used to continue pretraining, or
// to evaluate, at a longer (or shorter) context from a checkpoint.
Tensor resize_position_table(const Tensor& table, int64_t rows);
// True for the parameters resize_position_table applies to (the learned position tables).
bool is_position_table(const std::string& name);

}  // namespace dense::models
