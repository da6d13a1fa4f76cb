#pragma once
// The typed model configuration (docs/model-config.md). Built from JSON (YAML configs are converted to the
// same tree); unknown keys, wrong types and bad values fail naming the key path and what is allowed.
#include <nlohmann/json_fwd.hpp>
#include <optional>

#include <cstdint>
#include <string>
#include <vector>

#include "nn/attention_patterns.h"
#include "nn/dense_attention.h"
#include "nn/heads.h"
#include "nn/norm.h"
#include "nn/relpe.h"

namespace dense::models {

// The settings chosen from a fixed set of names are enums: from_json reads each name once (an unknown one is a
// dense::Error naming the key and every accepted name), to_json writes the canonical name back, so a config
// written by to_json reads back to the same text. Aliases the registry also accepts ("no_ln", "null" or "" for
// none; "swish" for silu; "linear" for identity; "dummy" for no RelPE) read as their canonical value.
enum class ModelType { Danet, Bert };
// Every activation with its config name, written once: ActivationType is this list, and NormType (a norm slot:
// pre/post/embedding/final/pooler/LM-head) ends with it, because the reference's Activation2Class registry lets every
// norm slot take every activation (docs/model.md §1.2). The two enums cannot drift apart.
#define DENSE_MODEL_ACTIVATIONS(X) \
  X(Gelu, "gelu")                  \
  X(LegacyGelu, "legacy_gelu")     \
  X(GeluTanh, "gelu_tanh")         \
  X(Relu, "relu")                  \
  X(Tanh, "tanh")                  \
  X(Silu, "silu")                  \
  X(Sigmoid, "sigmoid")            \
  X(LeakyRelu, "leaky_relu")       \
  X(LeakyRelu01, "leaky_relu_0.1") \
  X(Hardtanh, "hardtanh")          \
  X(Identity, "identity")
#define DENSE_MODEL_ENUMERATOR(value, name) value,
enum class NormType : uint8_t {
  None,
  MaxNorm,
  ScaledMaxNorm,
  PrescaledMaxNorm,
  UncenteredLn,
  UncenteredFixedLn,
  StandardLn,
  DENSE_MODEL_ACTIVATIONS(DENSE_MODEL_ENUMERATOR)
};
// An activation slot (pooler_act, lm_head_act, hidden_act).
enum class ActivationType : uint8_t { DENSE_MODEL_ACTIVATIONS(DENSE_MODEL_ENUMERATOR) };
#undef DENSE_MODEL_ENUMERATOR
enum class PositionEmbedding : uint8_t { Learned, Sinusoidal, RelPE };

// The canonical name of each value: what the config files hold and to_json writes.
const char* config_name(ModelType v);
const char* config_name(NormType v);
const char* config_name(ActivationType v);
const char* config_name(PositionEmbedding v);
const char* config_name(nn::AttentionComplexity v);
const char* config_name(nn::RelPEType v);
const char* config_name(nn::PoolFunction v);
const char* config_name(nn::LayerKind v);                                 // its local_scheme code: "g", "l", "sl", "sw"
std::string local_scheme_text(const std::vector<nn::LayerKind>& scheme);  // "l_sl_g"
// Reads a name (`field` names the key in the error, which lists every accepted name).
NormType parse_norm_type(const std::string& name, const std::string& field);
ActivationType parse_activation_type(const std::string& name, const std::string& field);
// The nn modules' description of a slot.
nn::NormSpec norm_spec(NormType v);
nn::NormSpec activation_spec(ActivationType v);

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
  nn::AttentionComplexity attention_complexity = nn::AttentionComplexity::Auto;
  NormType pre_attn_ln_type = NormType::MaxNorm;
  NormType post_attn_ln_type = NormType::MaxNorm;
  NormType embedding_ln_type = NormType::Hardtanh;
  NormType final_ln_type = NormType::None;
  bool token_type_embeddings = false;
  int64_t type_vocab_size = 2;
  PositionEmbedding pos_emb_type = PositionEmbedding::Learned;
  nn::RelPEType relpe_type = nn::RelPEType::None;
  std::string relpe_scheme = "qkv";  // a list of targets (nn::RelPEScheme), checked in validate()
  nn::PoolFunction pooler_function = nn::PoolFunction::Mean;
  bool pooler_no_dense = false;
  ActivationType pooler_act = ActivationType::Gelu;
  NormType pooler_ln_type = NormType::None;
  ActivationType lm_head_act = ActivationType::Gelu;
  NormType lm_head_ln_type = NormType::UncenteredLn;
  bool causal = false;
  int64_t chunk_size = 1024;
  bool local_attention = false;
  int64_t window_size = 1024;
  bool local_relpe = true;
  // One period of layer kinds, repeated over the layers when local_attention. In a config: the codes g (global),
  // l (local), sl (shifted local), sw (sliding window, causal only) joined by '_', e.g. "l_sl_g".
  std::vector<nn::LayerKind> local_scheme = {nn::LayerKind::Local, nn::LayerKind::ShiftedLocal, nn::LayerKind::Global};

  // Both: `attention: {type: sparse, pattern: <kind>, <pattern keys>...}` (nn/attention_patterns.h) makes every
  // layer attend over the pattern's graph: softmax graph attention in BERT, masked DenseAttention in DANet.
  // Held as the pattern's canonical string (describe()); empty for the model's own dense attention.
  std::string attention_pattern;
  std::optional<nn::PatternSpec> sparse_pattern() const;
  // BERT
  ActivationType hidden_act = ActivationType::Gelu;
  double layer_norm_eps = 1e-12;

  int64_t padded_vocab_size() const { return (vocab_size + 7) / 8 * 8; }
  int64_t head_size() const { return hidden_size / num_attention_heads; }
  // The kind of every layer: local_scheme repeated; all Global without local attention.
  std::vector<nn::LayerKind> layer_kinds() const;

  // Parses `j` (an object). `path` prefixes key names in errors ("model").
  static ModelConfig from_json(const nlohmann::json& j, const std::string& path = "model");
  nlohmann::json to_json() const;
  // Checks cross-field constraints; throws dense::Error naming the field and the allowed values.
  void validate() const;
};

// Keys accepted in a model config (for "did you mean" and docs).
const std::vector<std::string>& model_config_keys();

}  // namespace dense::models
