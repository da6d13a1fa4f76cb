#pragma once
// Token embeddings (docs/model.md §1.3): word [+ learned or sinusoidal position] [+ segment], then a norm and dropout.
// The word table is shared with the tied MLM decoder, so its gradient receives both contributions.
#include <string>

#include "nn/context.h"
#include "nn/linear.h"
#include "nn/norm.h"
#include "nn/parameter.h"

namespace dense::nn {

enum class PositionKind { None, Learned, Sinusoidal };

struct EmbeddingsConfig {
  int64_t vocab = 0;  // already padded
  int64_t hidden = 0;
  PositionKind positions = PositionKind::Learned;
  int64_t max_positions = 0;
  int64_t type_vocab = 0;  // 0: no segment embeddings
  NormSpec norm;
  double dropout = 0.0;
  Init word_init = Init::normal(0.02);
  Init table_init = Init::normal(0.02);  // position and segment tables
};

class Embeddings {
 public:
  Embeddings() = default;
  Embeddings(ParameterSet& params, const std::string& prefix, const EmbeddingsConfig& cfg);
  // ids [B, N] i64; token_types [B, N] i64 or undefined (all zeros).
  Tensor forward(const Tensor& ids, const Tensor& token_types, DType dtype, Context& ctx);
  void backward(const Tensor& dy);
  void release();
  Parameter* word() const { return word_; }

 private:
  EmbeddingsConfig cfg_;
  Parameter* word_ = nullptr;
  Parameter* position_ = nullptr;
  Parameter* token_type_ = nullptr;
  Tensor sinusoid_;  // [max_positions, hidden] in the model dtype, built on first use
  Norm norm_;
  Dropout dropout_;
  Tensor ids_, types_;
  int64_t batch_ = 0, length_ = 0;
};

// Sinusoidal table: channel 2i gets sin(p·ω_i), 2i+1 gets cos(p·ω_i), ω_i = 10000^(−2i/d); computed in f64.
Tensor sinusoidal_table(int64_t positions, int64_t hidden, DType dtype, Device device);

}  // namespace dense::nn
