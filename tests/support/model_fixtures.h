#pragma once
// Whole-model test fixtures shared by model_test and sparse_model_test: a deterministic batch with padding and
// MLM/class labels, weights drawn away from the spec's tiny init, and the finite-difference check of a model.
#include <cstdint>
#include <string>
#include <vector>

#include "gradcheck.h"
#include "models/model.h"

namespace dense::testing {

inline models::Batch make_batch(int64_t B, int64_t N, int64_t vocab, int64_t pads_in_row1, uint64_t seed) {
  std::vector<int64_t> ids(size_t(B * N)), mask(size_t(B * N), 1), labels(size_t(B * N), -1),
      cls(static_cast<size_t>(B));
  for (int64_t i = 0; i < B * N; ++i)
    ids[size_t(i)] = int64_t((seed * 2654435761u + uint64_t(i) * 40503u) % uint64_t(vocab));
  for (int64_t i = 0; i < pads_in_row1; ++i) mask[size_t(1 * N + N - 1 - i)] = 0;
  for (int64_t i = 0; i < B * N; i += 3)
    if (mask[size_t(i)]) labels[size_t(i)] = ids[size_t((i * 7) % (B * N))];
  for (int64_t b = 0; b < B; ++b) cls[size_t(b)] = b % 3;
  models::Batch batch;
  batch.input_ids = Tensor::from_vector(ids, {B, N}, DType::I64);
  batch.attention_mask = Tensor::from_vector(mask, {B, N}, DType::I64);
  batch.mlm_labels = Tensor::from_vector(labels, {B, N}, DType::I64);
  batch.class_labels = Tensor::from_vector(cls, {B}, DType::I64);
  return batch;
}

// Weights drawn well away from the spec's tiny init so that every path carries signal in the check.
inline void randomize(nn::ParameterSet& params, uint64_t seed) {
  for (auto& p : params.all()) {
    if (p.kind == nn::ParamKind::Gain) {
      ops::fill_uniform(p.value, 0.8, 1.2, seed ^ nn::hash_name(p.name), 0);
    } else {
      ops::fill_normal(p.value, 0.0, p.kind == nn::ParamKind::Bias ? 0.1 : 0.4, seed ^ nn::hash_name(p.name), 0);
    }
  }
}

inline void check_model_gradients(const models::ModelConfig& config, int64_t N, int64_t pads) {
  auto model = models::build_model(config, DType::F64, Device::cpu(), 3);
  randomize(model->params(), 11);
  const models::Batch batch = make_batch(2, N, config.vocab_size, pads, 5);
  auto forward = [&] {
    nn::Context ctx;
    const models::Outputs out = model->forward(batch, ctx);
    return Tensor::full({1}, out.loss, DType::F64);
  };
  auto backward = [&](const Tensor& w) {
    model->params().zero_grad();
    model->backward(w.item());
  };
  std::vector<dense::testing::GradVar> vars;
  for (auto& p : model->params().all()) {
    // The key bias shifts every score of a row equally, which the softmax cancels: its gradient is exactly
    // zero, so a relative check is meaningless (bert_layer_test checks the invariance instead).
    if (p.name.find("attention.key.bias") != std::string::npos) continue;
    vars.push_back({p.name, p.value, p.grad});
  }
  dense::testing::check_gradients(forward, backward, vars, 1e-6, 1e-6, 24);
}

}  // namespace dense::testing
