#include "train/hf_import.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/safetensors.h"

namespace dense::train {
namespace fs = std::filesystem;

bool is_hf_checkpoint(const std::string& path) {
  std::error_code ec;
  const fs::path dir(path);
  return fs::is_directory(dir, ec) && fs::is_regular_file(dir / "config.json", ec) &&
         !fs::exists(dir / "checksums.json", ec) && !fs::exists(dir / "trainer_state.json", ec);
}

namespace {

// Families whose checkpoints look like BERT's at a glance but are laid out differently: refused by name, since a
// partial match would load some tensors into the wrong places.
const std::map<std::string, std::string>& other_families() {
  static const std::map<std::string, std::string> m = {
      {"roberta",
       "RoBERTa (positions offset by padding_idx + 1, no segment embeddings, a `roberta.` prefix and "
       "`lm_head.*` names)"},
      {"xlm-roberta", "XLM-RoBERTa (the RoBERTa layout)"},
      {"camembert", "CamemBERT (the RoBERTa layout)"},
      {"distilbert",
       "DistilBERT (`distilbert.transformer.layer.N.attention.q_lin` names, no pooler, no segment "
       "embeddings, sa_layer_norm / output_layer_norm)"},
      {"albert", "ALBERT (shared layers, factorised embeddings)"},
      {"electra", "ELECTRA (separate embedding projection)"},
      {"deberta", "DeBERTa (disentangled relative attention)"},
      {"deberta-v2", "DeBERTa-v2 (disentangled relative attention)"},
      {"mpnet", "MPNet (relative attention bias)"},
  };
  return m;
}

std::string family_of_prefix(const std::string& name) {
  for (const char* p : {"roberta.", "distilbert.", "albert.", "electra.", "deberta.", "mpnet.", "transformer.layer."})
    if (name.rfind(p, 0) == 0) return std::string(p).substr(0, std::string(p).find('.'));
  return "";
}

// densetrain's BERT is pre-LN and a standard checkpoint post-LN: each norm is placed by the sub-layer whose input it
// normalises. Layer i's FFN reads attention.output.LayerNorm of layer i; layer i+1's attention (and, after the last
// layer, the heads) read output.LayerNorm of layer i. Layer 0's attention reads the embedding LayerNorm's output in
// a post-LN model, with no norm of its own: densetrain's has one, kept under the reference repository's name.
std::map<std::string, std::string> standard_to_densetrain(int64_t L) {
  std::map<std::string, std::string> m;
  m["embeddings.word_embeddings.weight"] = "embeddings.word_embeddings.weight";
  m["embeddings.position_embeddings.weight"] = "embeddings.position_embeddings.weight";
  for (const char* s : {"weight", "bias"}) {
    m[fmt::format("embeddings.LayerNorm.{}", s)] = fmt::format("embeddings.norm.{}", s);
    for (int64_t i = 0; i < L; ++i) {
      const std::string p = fmt::format("encoder.layer.{}.", i);
      for (const char* proj : {"query", "key", "value"})
        m[p + fmt::format("attention.self.{}.{}", proj, s)] = p + fmt::format("attention.{}.{}", proj, s);
      m[p + fmt::format("attention.output.dense.{}", s)] = p + fmt::format("attention.output.{}", s);
      m[p + fmt::format("attention.output.LayerNorm.{}", s)] = p + fmt::format("ffn_norm.{}", s);
      m[p + fmt::format("intermediate.dense.{}", s)] = p + fmt::format("ffn.dense_in.{}", s);
      m[p + fmt::format("output.dense.{}", s)] = p + fmt::format("ffn.dense_out.{}", s);
      m[p + fmt::format("output.LayerNorm.{}", s)] = i + 1 < L
                                                         ? fmt::format("encoder.layer.{}.attention_norm.{}", i + 1, s)
                                                         : fmt::format("encoder.final_norm.{}", s);
    }
    m[fmt::format("encoder.layer.0.PreAttentionLayerNorm.{}", s)] = fmt::format("encoder.layer.0.attention_norm.{}", s);
    m[fmt::format("pooler.dense.{}", s)] = fmt::format("pooler.dense.{}", s);
    m[fmt::format("cls.predictions.transform.dense.{}", s)] = fmt::format("lm_head.transform.dense.{}", s);
    m[fmt::format("cls.predictions.transform.LayerNorm.{}", s)] = fmt::format("lm_head.transform.norm.{}", s);
    m[fmt::format("classifier.{}", s)] = fmt::format("classifier.{}", s);
  }
  m["cls.predictions.bias"] = "lm_head.bias";
  return m;
}

const std::map<std::string, std::string>& hf_activations() {
  static const std::map<std::string, std::string> m = {
      {"gelu", "gelu"}, {"gelu_new", "gelu_tanh"}, {"gelu_pytorch_tanh", "gelu_tanh"},
      {"relu", "relu"}, {"silu", "silu"},          {"swish", "silu"},
      {"tanh", "tanh"}};
  return m;
}

int64_t padded(int64_t v) { return (v + 7) / 8 * 8; }

bool same_values(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.to(DType::F32).to_vector<float>() == b.to(DType::F32).to_vector<float>();
}

}  // namespace

HfImport import_hf_bert(const std::string& folder, models::Model& model) {
  const models::ModelConfig& mc = model.config();
  const fs::path dir(folder);
  const std::string cfg_path = (dir / "config.json").string();
  nlohmann::json conf;
  {
    std::ifstream in(cfg_path);
    DENSE_CHECK(in.good(), "--init-from {}: cannot read {}", folder, cfg_path);
    try {
      in >> conf;
    } catch (const std::exception& e) {
      DENSE_FAIL("{}: not valid JSON ({})", cfg_path, e.what());
    }
  }
  DENSE_CHECK(conf.is_object(), "{}: expected a JSON object", cfg_path);
  const std::string family = conf.value("model_type", std::string());
  if (auto it = other_families().find(family); it != other_families().end())
    DENSE_FAIL(
        "--init-from {}: {} says model_type '{}': a {} checkpoint; only BERT checkpoints (BertModel, "
        "BertForMaskedLM, BertForPreTraining, BertForSequenceClassification names) can be imported",
        folder, cfg_path, family, it->second);
  if (conf.contains("densetrain") && conf["densetrain"].contains("model") &&
      conf["densetrain"]["model"].value("model_type", "") == "danet")
    DENSE_FAIL(
        "--init-from {}: a DANet folder written by scripts/export_hf.py; convert it back with "
        "`/usr/bin/python3 scripts/export_hf.py import {} model.safetensors` and pass that file",
        folder, folder);
  DENSE_CHECK(family == "bert",
              "--init-from {}: {} says model_type '{}'; expected 'bert' (a Hugging Face BERT "
              "checkpoint folder)",
              folder, cfg_path, family);
  DENSE_CHECK(mc.model_type == models::ModelType::Bert,
              "--init-from {}: a Hugging Face BERT checkpoint, but the config's model is a DANet (model.model_type: "
              "danet); Hugging Face checkpoints initialise the BERT baseline (model_type: bert)",
              folder);

  // config.json must describe the model being built: every difference is listed at once.
  std::vector<std::string> diffs;
  auto want_int = [&](const char* key, int64_t have, bool pad) {
    if (!conf.contains(key) || !conf[key].is_number_integer()) {
      diffs.push_back(fmt::format("{}: no integer '{}'", cfg_path, key));
      return;
    }
    const int64_t v = conf[key].get<int64_t>();
    if ((pad ? padded(v) : v) != (pad ? padded(have) : have))
      diffs.push_back(fmt::format("model.{}: the config has {}, {} has {}{}", key, have, cfg_path, v,
                                  pad ? " (both padded to a multiple of 8)" : ""));
  };
  want_int("hidden_size", mc.hidden_size, false);
  want_int("num_hidden_layers", mc.num_hidden_layers, false);
  want_int("num_attention_heads", mc.num_attention_heads, false);
  want_int("intermediate_size", mc.intermediate_size, false);
  want_int("vocab_size", mc.vocab_size, true);
  const std::string act = conf.value("hidden_act", std::string("gelu"));
  if (auto it = hf_activations().find(act); it == hf_activations().end())
    diffs.push_back(
        fmt::format("{}: hidden_act '{}' has no densetrain counterpart (gelu, gelu_new, "
                    "gelu_pytorch_tanh, relu, silu, swish, tanh)",
                    cfg_path, act));
  else if (it->second != models::config_name(mc.hidden_act))
    diffs.push_back(fmt::format("model.hidden_act: the config has '{}', {} has '{}' (set hidden_act: {})",
                                models::config_name(mc.hidden_act), cfg_path, act, it->second));
  const double eps = conf.value("layer_norm_eps", 1e-12);
  if (std::abs(eps - mc.layer_norm_eps) > 1e-6 * std::abs(eps))
    diffs.push_back(
        fmt::format("model.layer_norm_eps: the config has {}, {} has {}", mc.layer_norm_eps, cfg_path, eps));
  const std::string pos_type = conf.value("position_embedding_type", std::string("absolute"));
  if (pos_type != "absolute")
    diffs.push_back(
        fmt::format("{}: position_embedding_type '{}': densetrain's BERT has absolute learned positions "
                    "only",
                    cfg_path, pos_type));
  if (!diffs.empty()) {
    std::string msg =
        fmt::format("--init-from {}: the Hugging Face config differs from the model being built:", folder);
    for (const auto& d : diffs) msg += "\n  " + d;
    DENSE_FAIL("{}", msg);
  }

  HfImport r;
  const fs::path st = dir / "model.safetensors";
  std::error_code ec;
  if (!fs::is_regular_file(st, ec)) {
    DENSE_CHECK(!fs::is_regular_file(dir / "pytorch_model.bin", ec),
                "--init-from {}: only pytorch_model.bin, which densetrain does not read (a pickle: reading it means "
                "running a pickle interpreter on the file); convert it once with\n  /usr/bin/python3 "
                "scripts/export_hf.py bin-to-safetensors {}\n(torch.load with weights_only=True, writes {})",
                folder, folder, st.string());
    DENSE_FAIL("--init-from {}: no model.safetensors (or pytorch_model.bin) beside {}", folder, cfg_path);
  }
  r.source = st.string();
  SafeTensors file = read_safetensors(r.source);

  std::map<std::string, Tensor> sd;  // names without the `bert.` prefix
  for (auto& [name, t] : file.tensors) {
    const std::string fam = family_of_prefix(name);
    DENSE_CHECK(fam.empty(), "{}: tensor '{}': a {} checkpoint; only BERT checkpoints can be imported", r.source, name,
                fam);
    std::string n = name.rfind("bert.", 0) == 0 ? name.substr(5) : name;
    DENSE_CHECK(!sd.count(n), "{}: '{}' appears with and without the `bert.` prefix", r.source, n);
    sd.emplace(n, t.to(DType::F32));
  }

  const auto names = standard_to_densetrain(mc.num_hidden_layers);
  std::map<std::string, Tensor> out;
  std::set<std::string> used;
  for (const auto& [hf, dt] : names) {
    auto it = sd.find(hf);
    if (it == sd.end()) continue;
    out[dt] = it->second;
    used.insert(hf);
  }
  const Tensor* words =
      out.count("embeddings.word_embeddings.weight") ? &out["embeddings.word_embeddings.weight"] : nullptr;
  DENSE_CHECK(words != nullptr,
              "{}: no embeddings.word_embeddings.weight (with or without `bert.`): not a BERT "
              "checkpoint",
              r.source);
  // The tied decoder and its bias must be what densetrain ties them to.
  if (auto it = sd.find("cls.predictions.decoder.weight"); it != sd.end()) {
    DENSE_CHECK(same_values(it->second, *words),
                "{}: cls.predictions.decoder.weight differs from the word embeddings; "
                "densetrain ties the MLM decoder to them",
                r.source);
    used.insert(it->first);
  }
  if (auto it = sd.find("cls.predictions.decoder.bias"); it != sd.end()) {
    auto b = sd.find("cls.predictions.bias");
    DENSE_CHECK(b != sd.end() && same_values(it->second, b->second),
                "{}: cls.predictions.decoder.bias differs from cls.predictions.bias", r.source);
    used.insert(it->first);
  }
  if (sd.count("embeddings.position_ids")) used.insert("embeddings.position_ids");  // a buffer of older files
  if (!out.count("classifier.weight") && sd.count("cls.seq_relationship.weight")) {
    out["classifier.weight"] = sd["cls.seq_relationship.weight"];
    used.insert("cls.seq_relationship.weight");
    if (sd.count("cls.seq_relationship.bias")) {
      out["classifier.bias"] = sd["cls.seq_relationship.bias"];
      used.insert("cls.seq_relationship.bias");
    }
    r.notes.push_back(fmt::format("{}: the next-sentence head cls.seq_relationship becomes the classifier", r.source));
  }
  // Segment embeddings: densetrain's BERT has none. Row 0 (every token of a single-segment input) is added to every
  // position, which is exact for such inputs.
  if (auto it = sd.find("embeddings.token_type_embeddings.weight"); it != sd.end()) {
    used.insert(it->first);
    auto pos = out.find("embeddings.position_embeddings.weight");
    DENSE_CHECK(pos != out.end(), "{}: segment embeddings but no position embeddings", r.source);
    const Tensor row0 = it->second.select(0, 0).contiguous();
    std::vector<float> r0 = row0.to_vector<float>();
    if (std::any_of(r0.begin(), r0.end(), [](float v) { return v != 0.0f; })) {
      std::vector<float> p = pos->second.contiguous().to_vector<float>();
      const size_t d = r0.size();
      for (size_t i = 0; i < p.size(); ++i) p[i] += r0[i % d];
      pos->second = Tensor::from_vector(p, pos->second.shape(), DType::F32);
      r.notes.push_back(
          fmt::format("{}: segment embedding row 0 added to every position (densetrain's BERT has no "
                      "segment embeddings; tokens of segment 1 lose their offset)",
                      r.source));
    }
  }
  std::vector<std::string> unknown;
  for (const auto& [n, t] : sd)
    if (!used.count(n)) unknown.push_back(fmt::format("{} {}", n, shape_str(t.shape())));
  if (!unknown.empty()) {
    std::string msg =
        fmt::format("{}: {} tensor(s) with no counterpart in densetrain's BERT:", r.source, unknown.size());
    for (size_t i = 0; i < unknown.size() && i < 12; ++i) msg += "\n  " + unknown[i];
    DENSE_FAIL("{}", msg);
  }

  // Every parameter of the model: mapped, padded, or (heads, layer 0's pre-attention norm) filled.
  std::vector<std::string> filled;
  for (const auto& p : model.params().all()) {
    auto it = out.find(p.name);
    if (it != out.end()) {
      Tensor& t = it->second;
      const bool vocab_rows = (p.name == "embeddings.word_embeddings.weight" || p.name == "lm_head.bias") &&
                              t.dim() == int64_t(p.shape.size()) && t.size(0) < p.shape[0] &&
                              padded(t.size(0)) == p.shape[0];
      if (vocab_rows) {  // densetrain pads the vocabulary to a multiple of 8; the padding rows are no tokens
        Tensor padded_t = Tensor::zeros(p.shape, DType::F32);
        padded_t.slice(0, 0, t.size(0)).copy_(t);
        r.notes.push_back(
            fmt::format("{}: '{}' padded from {} to {} rows with zeros", r.source, p.name, t.size(0), p.shape[0]));
        t = padded_t;
      }
      r.tensors.emplace_back(p.name, t);
      continue;
    }
    const bool head =
        p.name.rfind("lm_head.", 0) == 0 || p.name.rfind("pooler.", 0) == 0 || p.name.rfind("classifier.", 0) == 0;
    if (p.name == "encoder.layer.0.attention_norm.weight" || p.name == "encoder.layer.0.attention_norm.bias") {
      r.tensors.emplace_back(p.name, Tensor::full(p.shape, p.name.back() == 't' ? 1.0 : 0.0, DType::F32));
      filled.push_back(p.name + (p.name.back() == 't' ? " = 1" : " = 0"));
      continue;
    }
    DENSE_CHECK(head,
                "{}: no tensor for densetrain's '{}' (shape {}); a BERT checkpoint with the standard names has "
                "it (mapping: docs/export.md)",
                r.source, p.name, shape_str(p.shape));
    r.tensors.emplace_back(p.name, p.value.to(Device::cpu()).clone());
    filled.push_back(p.name + " (the model's initialisation)");
  }
  if (!filled.empty()) {
    std::string msg = fmt::format("{}: not in the checkpoint, filled:", r.source);
    for (const auto& f : filled) msg += " " + f + ";";
    r.notes.push_back(msg);
  }
  return r;
}

}  // namespace dense::train
