#include "models/model_config.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <variant>

#include "core/edit_distance.h"
#include "core/error.h"

namespace dense::models {

namespace {

using Field =
    std::variant<int64_t ModelConfig::*, double ModelConfig::*, bool ModelConfig::*, std::string ModelConfig::*,
                 NormType ModelConfig::*, ActivationType ModelConfig::*, PositionEmbedding ModelConfig::*,
                 nn::AttentionComplexity ModelConfig::*, nn::RelPEType ModelConfig::*, nn::PoolFunction ModelConfig::*,
                 std::vector<nn::LayerKind> ModelConfig::*>;

// Every accepted spelling of a fixed-choice setting: the canonical names first (in the order the error lists
// them), then the aliases the registry also reads.
template <typename E>
struct Spelling {
  const char* name;
  E value;
  bool canonical = true;
};

const std::vector<Spelling<NormType>>& norm_spellings() {
  static const std::vector<Spelling<NormType>> table = {
      {"none", NormType::None},
      {"max_norm", NormType::MaxNorm},
      {"scaled_max_norm", NormType::ScaledMaxNorm},
      {"prescaled_max_norm", NormType::PrescaledMaxNorm},
      {"uncentered_ln", NormType::UncenteredLn},
      {"uncentered_fixed_ln", NormType::UncenteredFixedLn},
      {"standard_ln", NormType::StandardLn},
  // clang-format off
#define DENSE_SPELLING(value, name) {name, NormType::value},
      DENSE_MODEL_ACTIVATIONS(DENSE_SPELLING)
#undef DENSE_SPELLING
      // clang-format on
      {"no_ln", NormType::None, false},
      {"null", NormType::None, false},
      {"", NormType::None, false},
      {"swish", NormType::Silu, false},
      {"linear", NormType::Identity, false},
  };
  return table;
}

const std::vector<Spelling<ActivationType>>& activation_spellings() {
  static const std::vector<Spelling<ActivationType>> table = {
  // clang-format off
#define DENSE_SPELLING(value, name) {name, ActivationType::value},
      DENSE_MODEL_ACTIVATIONS(DENSE_SPELLING)
#undef DENSE_SPELLING
      // clang-format on
      {"swish", ActivationType::Silu, false},
      {"linear", ActivationType::Identity, false},
  };
  return table;
}

const std::vector<Spelling<PositionEmbedding>>& position_spellings() {
  static const std::vector<Spelling<PositionEmbedding>> table = {
      {"learned", PositionEmbedding::Learned},
      {"sinusoidal", PositionEmbedding::Sinusoidal},
      {"relpe", PositionEmbedding::RelPE},
  };
  return table;
}

const std::vector<Spelling<nn::AttentionComplexity>>& complexity_spellings() {
  static const std::vector<Spelling<nn::AttentionComplexity>> table = {
      {"linear", nn::AttentionComplexity::Linear},
      {"quadratic", nn::AttentionComplexity::Quadratic},
      {"auto", nn::AttentionComplexity::Auto},
  };
  return table;
}

const std::vector<Spelling<nn::RelPEType>>& relpe_spellings() {
  static const std::vector<Spelling<nn::RelPEType>> table = {
      {"none", nn::RelPEType::None},
      {"cosine", nn::RelPEType::Cosine},
      {"cos_minus_sin", nn::RelPEType::CosMinusSin},
      {"rope", nn::RelPEType::Rope},
      {"dummy", nn::RelPEType::None, false},
      {"null", nn::RelPEType::None, false},
      {"", nn::RelPEType::None, false},
  };
  return table;
}

const std::vector<Spelling<nn::PoolFunction>>& pool_spellings() {
  static const std::vector<Spelling<nn::PoolFunction>> table = {
      {"first", nn::PoolFunction::First},
      {"mean", nn::PoolFunction::Mean},
      {"max", nn::PoolFunction::Max},
      {"masked_mean", nn::PoolFunction::MaskedMean},
  };
  return table;
}

const std::vector<Spelling<nn::LayerKind>>& layer_code_spellings() {
  static const std::vector<Spelling<nn::LayerKind>> table = {
      {"g", nn::LayerKind::Global},
      {"l", nn::LayerKind::Local},
      {"sl", nn::LayerKind::ShiftedLocal},
      {"sw", nn::LayerKind::SlidingWindow},
  };
  return table;
}

template <typename E>
const char* canonical_name(const std::vector<Spelling<E>>& table, E value) {
  for (const auto& s : table)
    if (s.canonical && s.value == value) return s.name;
  DENSE_FAIL("model config: value {} has no name", int(value));
}

// `what` is the kind of setting in the error ("norm", "activation", ...).
template <typename E>
E parse_spelling(const std::vector<Spelling<E>>& table, const std::string& name, const std::string& field,
                 const char* what) {
  for (const auto& s : table)
    if (name == s.name) return s.value;
  std::string allowed;
  for (const auto& s : table)
    if (s.canonical) {
      if (!allowed.empty()) allowed += ", ";
      allowed += s.name;
    }
  DENSE_FAIL("{}: unknown {} '{}'; allowed: {}", field, what, name, allowed);
}

// The parser of a fixed-choice member's type.
NormType parse_value(NormType*, const std::string& name, const std::string& field) {
  return parse_norm_type(name, field);
}
ActivationType parse_value(ActivationType*, const std::string& name, const std::string& field) {
  return parse_activation_type(name, field);
}
PositionEmbedding parse_value(PositionEmbedding*, const std::string& name, const std::string& field) {
  return parse_spelling(position_spellings(), name, field, "position embedding");
}
nn::AttentionComplexity parse_value(nn::AttentionComplexity*, const std::string& name, const std::string& field) {
  return parse_spelling(complexity_spellings(), name, field, "attention complexity");
}
nn::RelPEType parse_value(nn::RelPEType*, const std::string& name, const std::string& field) {
  // The reference's multiplicative learned RelPE is broken; say so rather than "unknown".
  DENSE_CHECK(name != "learned",
              "{}: 'learned' (the multiplicative learned RelPE) is not supported: it is broken in the reference "
              "implementation (docs/model.md §1.6); allowed: none, cosine, cos_minus_sin, rope",
              field);
  return parse_spelling(relpe_spellings(), name, field, "RelPE type");
}
nn::PoolFunction parse_value(nn::PoolFunction*, const std::string& name, const std::string& field) {
  return parse_spelling(pool_spellings(), name, field, "pooler function");
}
std::vector<nn::LayerKind> parse_value(std::vector<nn::LayerKind>*, const std::string& text, const std::string& field) {
  std::vector<nn::LayerKind> scheme;
  size_t start = 0;
  while (true) {
    const size_t end = text.find('_', start);
    const std::string code = text.substr(start, end - start);
    const auto it = std::find_if(layer_code_spellings().begin(), layer_code_spellings().end(),
                                 [&](const auto& s) { return code == s.name; });
    DENSE_CHECK(it != layer_code_spellings().end(),
                "{} '{}': unknown layer code '{}'; allowed: g, l, sl, sw (joined by _)", field, text, code);
    scheme.push_back(it->value);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return scheme;
}

const std::vector<std::pair<std::string, Field>>& fields() {
  static const std::vector<std::pair<std::string, Field>> table = {
      {"vocab_size", &ModelConfig::vocab_size},
      {"hidden_size", &ModelConfig::hidden_size},
      {"num_hidden_layers", &ModelConfig::num_hidden_layers},
      {"num_attention_heads", &ModelConfig::num_attention_heads},
      {"intermediate_size", &ModelConfig::intermediate_size},
      {"max_position_embeddings", &ModelConfig::max_position_embeddings},
      {"initializer_range", &ModelConfig::initializer_range},
      {"hidden_dropout_prob", &ModelConfig::hidden_dropout_prob},
      {"attention_probs_dropout_prob", &ModelConfig::attention_probs_dropout_prob},
      {"embedding_dropout", &ModelConfig::embedding_dropout},
      {"num_labels", &ModelConfig::num_labels},
      {"classifier_bias", &ModelConfig::classifier_bias},
      {"pair_matching", &ModelConfig::pair_matching},
      {"swiglu_ffn", &ModelConfig::swiglu_ffn},
      {"attention_complexity", &ModelConfig::attention_complexity},
      {"pre_attn_ln_type", &ModelConfig::pre_attn_ln_type},
      {"post_attn_ln_type", &ModelConfig::post_attn_ln_type},
      {"embedding_ln_type", &ModelConfig::embedding_ln_type},
      {"final_ln_type", &ModelConfig::final_ln_type},
      {"token_type_embeddings", &ModelConfig::token_type_embeddings},
      {"type_vocab_size", &ModelConfig::type_vocab_size},
      {"pos_emb_type", &ModelConfig::pos_emb_type},
      {"relpe_type", &ModelConfig::relpe_type},
      {"relpe_scheme", &ModelConfig::relpe_scheme},
      {"pooler_function", &ModelConfig::pooler_function},
      {"pooler_no_dense", &ModelConfig::pooler_no_dense},
      {"pooler_act", &ModelConfig::pooler_act},
      {"pooler_ln_type", &ModelConfig::pooler_ln_type},
      {"lm_head_act", &ModelConfig::lm_head_act},
      {"lm_head_ln_type", &ModelConfig::lm_head_ln_type},
      {"causal", &ModelConfig::causal},
      {"chunk_size", &ModelConfig::chunk_size},
      {"local_attention", &ModelConfig::local_attention},
      {"window_size", &ModelConfig::window_size},
      {"local_relpe", &ModelConfig::local_relpe},
      {"local_scheme", &ModelConfig::local_scheme},
      {"hidden_act", &ModelConfig::hidden_act},
      {"layer_norm_eps", &ModelConfig::layer_norm_eps},
  };
  return table;
}

std::string did_you_mean(const std::string& key) {
  std::string best;
  size_t best_d = 4;  // suggest only close matches
  for (const auto& k : model_config_keys()) {
    const size_t d = edit_distance(key, k);
    if (d < best_d) {
      best_d = d;
      best = k;
    }
  }
  return best.empty() ? "" : fmt::format(" (did you mean '{}'?)", best);
}

const char* json_type(const nlohmann::json& v) { return v.type_name(); }

// null and "none" both mean "no norm" for the optional norm slots.
std::string read_string(const nlohmann::json& v, const std::string& key) {
  if (v.is_null()) return "none";
  DENSE_CHECK(v.is_string(), "{}: expected a string, got {} ({})", key, json_type(v), v.dump());
  return v.get<std::string>();
}

}  // namespace

namespace {

// `attention: {type: dense}` or `{type: sparse, pattern: <kind>, key: value...}` -> the canonical pattern
// string ("" for dense). Pattern values may be integers, booleans, strings or (global_tokens) lists.
std::string parse_attention(const nlohmann::json& v, const std::string& path) {
  DENSE_CHECK(v.is_object(), "{}: expected a mapping like {{type: sparse, pattern: fixed, stride: 128}}, got {} ({})",
              path, json_type(v), v.dump());
  DENSE_CHECK(v.contains("type"), "{}.type: missing; allowed: dense, sparse", path);
  const std::string type = read_string(v.at("type"), path + ".type");
  if (type == "dense") {
    DENSE_CHECK(v.size() == 1, "{}: type dense takes no other keys", path);
    return "";
  }
  DENSE_CHECK(type == "sparse", "{}.type: unknown attention type '{}'; allowed: dense, sparse", path, type);
  DENSE_CHECK(v.contains("pattern"), "{}.pattern: missing; the sparse pattern's kind (e.g. sliding_window, fixed)",
              path);
  std::map<std::string, std::string> kv;
  for (const auto& [key, value] : v.items()) {
    if (key == "type") continue;
    const std::string name = key == "pattern" ? "kind" : key;
    if (value.is_string()) {
      kv[name] = value.get<std::string>();
    } else if (value.is_boolean()) {
      kv[name] = value.get<bool>() ? "true" : "false";
    } else if (value.is_number_integer()) {
      kv[name] = std::to_string(value.get<int64_t>());
    } else if (value.is_array()) {
      std::string joined;
      for (const auto& item : value) {
        DENSE_CHECK(item.is_number_integer(), "{}.{}: expected a list of token indices, got {}", path, key,
                    value.dump());
        joined += (joined.empty() ? "" : "+") + std::to_string(item.get<int64_t>());
      }
      kv[name] = joined;
    } else {
      DENSE_FAIL("{}.{}: expected an integer, boolean, string or list, got {} ({})", path, key, json_type(value),
                 value.dump());
    }
  }
  return nn::describe(nn::parse_pattern_spec(kv, path));
}

}  // namespace

const char* config_name(ModelType v) { return v == ModelType::Danet ? "danet" : "bert"; }
const char* config_name(NormType v) { return canonical_name(norm_spellings(), v); }
const char* config_name(ActivationType v) { return canonical_name(activation_spellings(), v); }
const char* config_name(PositionEmbedding v) { return canonical_name(position_spellings(), v); }
const char* config_name(nn::AttentionComplexity v) { return canonical_name(complexity_spellings(), v); }
const char* config_name(nn::RelPEType v) { return canonical_name(relpe_spellings(), v); }
const char* config_name(nn::PoolFunction v) { return canonical_name(pool_spellings(), v); }
const char* config_name(nn::LayerKind v) { return canonical_name(layer_code_spellings(), v); }

std::string local_scheme_text(const std::vector<nn::LayerKind>& scheme) {
  std::string text;
  for (const nn::LayerKind k : scheme) {
    if (!text.empty()) text += '_';
    text += config_name(k);
  }
  return text;
}

NormType parse_norm_type(const std::string& name, const std::string& field) {
  return parse_spelling(norm_spellings(), name, field, "norm");
}
ActivationType parse_activation_type(const std::string& name, const std::string& field) {
  return parse_spelling(activation_spellings(), name, field, "activation");
}

// The canonical names are nn's registry names, so nn::parse_norm cannot fail on them.
nn::NormSpec norm_spec(NormType v) { return nn::parse_norm(config_name(v), "norm"); }
nn::NormSpec activation_spec(ActivationType v) { return nn::parse_activation(config_name(v), "activation"); }

std::optional<nn::PatternSpec> ModelConfig::sparse_pattern() const {
  if (attention_pattern.empty()) return std::nullopt;
  return nn::parse_pattern(attention_pattern, "model.attention");
}

const std::vector<std::string>& model_config_keys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> k{"model_type", "attention"};
    for (const auto& [name, f] : fields()) k.push_back(name);
    return k;
  }();
  return keys;
}

std::vector<nn::LayerKind> ModelConfig::layer_kinds() const {
  const std::vector<nn::LayerKind> global{nn::LayerKind::Global};
  const std::vector<nn::LayerKind>& scheme = local_attention && !local_scheme.empty() ? local_scheme : global;
  std::vector<nn::LayerKind> kinds;
  for (int64_t i = 0; i < num_hidden_layers; ++i) kinds.push_back(scheme[size_t(i) % scheme.size()]);
  return kinds;
}

ModelConfig ModelConfig::from_json(const nlohmann::json& j, const std::string& path) {
  DENSE_CHECK(j.is_object(), "{}: expected a mapping of model settings, got {}", path, json_type(j));
  ModelConfig c;
  if (j.contains("model_type")) {
    const std::string t = read_string(j.at("model_type"), path + ".model_type");
    if (t == "danet") {
      c.model_type = ModelType::Danet;
    } else if (t == "bert") {
      // The softmax baseline's defaults (docs/model.md §2.2, TransformerConfig).
      c.model_type = ModelType::Bert;
      c.num_attention_heads = 16;
      c.intermediate_size = 4096;
      c.hidden_dropout_prob = 0.1;
      c.attention_probs_dropout_prob = 0.1;
      c.classifier_bias = true;
      c.num_hidden_layers = 24;
    } else {
      DENSE_FAIL("{}.model_type: unknown model type '{}'; allowed: danet, bert", path, t);
    }
  }
  for (const auto& [key, value] : j.items()) {
    if (key == "model_type") continue;
    if (key == "attention") {
      c.attention_pattern = parse_attention(value, path + ".attention");
      continue;
    }
    const auto it = std::find_if(fields().begin(), fields().end(), [&](const auto& f) { return f.first == key; });
    DENSE_CHECK(it != fields().end(), "{}.{}: unknown key{}", path, key, did_you_mean(key));
    const std::string full = path + "." + key;
    std::visit(
        [&](auto member) {
          using T = std::remove_reference_t<decltype(c.*member)>;
          if constexpr (std::is_same_v<T, int64_t>) {
            DENSE_CHECK(value.is_number_integer(), "{}: expected an integer, got {} ({})", full, json_type(value),
                        value.dump());
            c.*member = value.get<int64_t>();
          } else if constexpr (std::is_same_v<T, double>) {
            DENSE_CHECK(value.is_number(), "{}: expected a number, got {} ({})", full, json_type(value), value.dump());
            c.*member = value.get<double>();
          } else if constexpr (std::is_same_v<T, bool>) {
            DENSE_CHECK(value.is_boolean(), "{}: expected true or false, got {} ({})", full, json_type(value),
                        value.dump());
            c.*member = value.get<bool>();
          } else if constexpr (std::is_same_v<T, std::string>) {
            c.*member = read_string(value, full);
          } else {
            c.*member = parse_value(static_cast<T*>(nullptr), read_string(value, full), full);
          }
        },
        it->second);
  }
  with_context("in " + path, [&] { c.validate(); });
  return c;
}

nlohmann::json ModelConfig::to_json() const {
  nlohmann::json j;
  j["model_type"] = config_name(model_type);
  for (const auto& [key, f] : fields())
    std::visit(
        [&](auto member) {
          using T = std::remove_cvref_t<decltype(this->*member)>;
          if constexpr (std::is_enum_v<T>)
            j[key] = config_name(this->*member);
          else if constexpr (std::is_same_v<T, std::vector<nn::LayerKind>>)
            j[key] = local_scheme_text(this->*member);
          else
            j[key] = this->*member;
        },
        f);
  nlohmann::json a{{"type", "dense"}};
  if (const auto spec = sparse_pattern()) {
    a["type"] = "sparse";
    for (const auto& [key, value] : nn::pattern_key_values(*spec)) a[key == "kind" ? "pattern" : key] = value;
  }
  j["attention"] = a;
  return j;
}

void ModelConfig::validate() const {
  auto positive = [](int64_t v, const char* key) { DENSE_CHECK(v > 0, "{} must be > 0, got {}", key, v); };
  positive(vocab_size, "vocab_size");
  positive(hidden_size, "hidden_size");
  positive(num_hidden_layers, "num_hidden_layers");
  positive(num_attention_heads, "num_attention_heads");
  positive(intermediate_size, "intermediate_size");
  positive(max_position_embeddings, "max_position_embeddings");
  positive(num_labels, "num_labels");
  DENSE_CHECK(hidden_size % num_attention_heads == 0,
              "hidden_size {} is not divisible by num_attention_heads {}; allowed head counts divide hidden_size",
              hidden_size, num_attention_heads);
  for (auto [v, key] : {std::pair{hidden_dropout_prob, "hidden_dropout_prob"},
                        std::pair{attention_probs_dropout_prob, "attention_probs_dropout_prob"},
                        std::pair{embedding_dropout, "embedding_dropout"}})
    DENSE_CHECK(v >= 0.0 && v < 1.0, "{} must be in [0, 1), got {}", key, v);
  DENSE_CHECK(initializer_range > 0.0, "initializer_range must be > 0, got {}", initializer_range);
  if (const auto spec = sparse_pattern()) {
    DENSE_CHECK(spec->causal == causal, "attention: the model is {} but the pattern is {} (set causal in both)",
                causal ? "causal" : "bidirectional", spec->causal ? "causal" : "bidirectional");
    DENSE_CHECK(model_type == ModelType::Bert || !local_attention,
                "attention: a sparse pattern replaces local_attention; set local_attention: false");
    DENSE_CHECK(model_type == ModelType::Danet || attention_probs_dropout_prob == 0.0,
                "attention: sparse attention has no dropout on the probabilities; set "
                "attention_probs_dropout_prob: 0 (got {})",
                attention_probs_dropout_prob);
  }

  if (model_type == ModelType::Bert) {
    DENSE_CHECK(layer_norm_eps > 0.0, "layer_norm_eps must be > 0, got {}", layer_norm_eps);
    return;
  }

  // The fixed-choice settings were read as enums by from_json; what is left are the cross-field rules.
  if (pos_emb_type == PositionEmbedding::RelPE) {
    nn::RelPEScheme::parse(relpe_scheme, "relpe_scheme");
    DENSE_CHECK(relpe_type != nn::RelPEType::Rope || head_size() % 2 == 0,
                "relpe_type: rope needs an even head size, got hidden_size/num_attention_heads = {}", head_size());
  }
  if (token_type_embeddings) positive(type_vocab_size, "type_vocab_size");
  if (causal) positive(chunk_size, "chunk_size");
  if (local_attention) {
    DENSE_CHECK(window_size > 0 && window_size % 2 == 0, "window_size must be even and > 0, got {}", window_size);
    DENSE_CHECK(window_size <= max_position_embeddings && max_position_embeddings % window_size == 0,
                "window_size {} cannot tile max_position_embeddings {}: it must divide it", window_size,
                max_position_embeddings);
    DENSE_CHECK(!local_scheme.empty(), "local_scheme: empty; give codes g, l, sl, sw joined by _");
    for (const nn::LayerKind kind : local_scheme)
      DENSE_CHECK(kind != nn::LayerKind::SlidingWindow || causal,
                  "local_scheme '{}': code 'sw' (sliding window) needs causal: true", local_scheme_text(local_scheme));
  }
}

}  // namespace dense::models
