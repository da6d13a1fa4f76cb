#pragma once
// The typed model configuration (docs/model-config.md). Built from JSON (YAML configs are converted to the
// same tree); unknown keys, wrong types and bad values fail naming the key path and what is allowed.
#include <nlohmann/json_fwd.hpp>
#include <optional>

#include <cstdint>
#include <string>
#include <vector>

#include "nn/attention_patterns.h"

namespace dense::models {

enum class ModelType { Danet, Bert };

struct ModelConfig {
  ModelType model_type = ModelType::Danet;
  int64_t vocab_size = 30528;
  int64_t hidden_size = 1024;
  int64_t num_hidden_layers = 32;
  int64_t num_attention_heads = 1;
  int64_t intermediate_size = 4;
  int64_t max_position_embeddings = 512;
  double initializer_range = 0.02;
  double hidden_dropout_prob = 0.0;
  double attention_probs_dropout_prob = 0.0;
  double embedding_dropout = 0.0;
  int64_t num_labels = 2;
  bool classifier_bias = false;
  bool pair_matching = false;  // two documents per example, matching head instead of the classifier (LRA AAN)

  // DANet
  bool swiglu_ffn = false;
  std::string attention_complexity = "auto";
  std::string pre_attn_ln_type = "max_norm";
  std::string post_attn_ln_type = "max_norm";
  std::string embedding_ln_type = "hardtanh";
  std::string final_ln_type = "none";
  bool token_type_embeddings = false;
  int64_t type_vocab_size = 2;
  std::string pos_emb_type = "learned";
  std::string relpe_type = "none";
  std::string relpe_scheme = "qkv";
  std::string pooler_function = "mean";
  bool pooler_no_dense = false;
  std::string pooler_act = "gelu";
  std::string pooler_ln_type = "none";
  std::string lm_head_act = "gelu";
  std::string lm_head_ln_type = "uncentered_ln";
  bool causal = false;
  int64_t chunk_size = 1024;
  bool local_attention = false;
  int64_t window_size = 1024;
  bool local_relpe = true;
  std::string local_scheme = "l_sl_g";

  // Both: `attention: {type: sparse, pattern: <kind>, <pattern keys>...}` (nn/attention_patterns.h) makes every
  // layer attend over the pattern's graph: softmax graph attention in BERT, masked DenseAttention in DANet.
  // Held as the pattern's canonical string (describe()); empty for the model's own dense attention.
  std::string attention_pattern;
  std::optional<nn::PatternSpec> sparse_pattern() const;
  // BERT
  std::string hidden_act = "gelu";
  double layer_norm_eps = 1e-12;

  int64_t padded_vocab_size() const { return (vocab_size + 7) / 8 * 8; }
  int64_t head_size() const { return hidden_size / num_attention_heads; }
  // Layer codes per layer ("g", "l", "sl", "sw"); all "g" without local attention.
  std::vector<std::string> layer_codes() const;

  // Parses `j` (an object). `path` prefixes key names in errors ("model").
  static ModelConfig from_json(const nlohmann::json& j, const std::string& path = "model");
  nlohmann::json to_json() const;
  // Checks cross-field constraints; throws dense::Error naming the field and the allowed values.
  void validate() const;
};

// Keys accepted in a model config (for "did you mean" and docs).
const std::vector<std::string>& model_config_keys();

}  // namespace dense::models
