// --init-from a Hugging Face BERT folder (src/train/hf_import.h): the standard names land on densetrain's
// parameters (norms by the sub-layer they feed), the vocabulary is padded, segment row 0 folded into the
// positions, missing heads filled, and other layouts refused by name.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>

#include "core/safetensors.h"
#include "models/model.h"
#include "test_files.h"
#include "train/evaluate.h"
#include "train/hf_import.h"

namespace dense {
namespace {

models::ModelConfig small_bert() {
  models::ModelConfig mc;
  mc.model_type = models::ModelType::Bert;
  mc.vocab_size = 37;  // padded to 40 by the model
  mc.hidden_size = 8;
  mc.num_hidden_layers = 2;
  mc.num_attention_heads = 2;
  mc.intermediate_size = 16;
  mc.max_position_embeddings = 16;
  mc.hidden_act = models::ActivationType::Gelu;
  mc.layer_norm_eps = 1e-12;
  mc.classifier_bias = true;
  mc.hidden_dropout_prob = 0;
  mc.attention_probs_dropout_prob = 0;
  return mc;
}

// Distinct values per tensor, so that a tensor landing in the wrong place is visible.
Tensor filled(const Shape& shape, int salt) {
  std::vector<float> v(size_t(shape_numel(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(salt) + 0.001f * float(i % 997);
  return Tensor::from_vector(v, shape, DType::F32);
}

// A BertForMaskedLM-style state dict (no pooler, no classifier) for small_bert(), as a Hugging Face folder.
std::map<std::string, Tensor> hf_tensors(const std::string& prefix, int64_t vocab = 37) {
  std::map<std::string, Tensor> t;
  int salt = 1;
  auto add = [&](const std::string& n, const Shape& s) { t[n] = filled(s, salt++); };
  add(prefix + "embeddings.word_embeddings.weight", {vocab, 8});
  add(prefix + "embeddings.position_embeddings.weight", {16, 8});
  add(prefix + "embeddings.token_type_embeddings.weight", {2, 8});
  for (const char* s : {"weight", "bias"}) add(prefix + "embeddings.LayerNorm." + s, {8});
  for (int i = 0; i < 2; ++i) {
    const std::string p = prefix + "encoder.layer." + std::to_string(i) + ".";
    for (const char* s : {"weight", "bias"}) {
      const bool w = std::string(s) == "weight";
      for (const char* q : {"query", "key", "value"})
        add(p + "attention.self." + q + "." + s, w ? Shape{8, 8} : Shape{8});
      add(p + "attention.output.dense." + s, w ? Shape{8, 8} : Shape{8});
      add(p + "attention.output.LayerNorm." + s, {8});
      add(p + "intermediate.dense." + s, w ? Shape{16, 8} : Shape{16});
      add(p + "output.dense." + s, w ? Shape{8, 16} : Shape{8});
      add(p + "output.LayerNorm." + s, {8});
    }
  }
  for (const char* s : {"weight", "bias"}) {
    add(std::string("cls.predictions.transform.dense.") + s, std::string(s) == "weight" ? Shape{8, 8} : Shape{8});
    add(std::string("cls.predictions.transform.LayerNorm.") + s, {8});
  }
  add("cls.predictions.bias", {vocab});
  t["cls.predictions.decoder.weight"] = t[prefix + "embeddings.word_embeddings.weight"].clone();
  return t;
}

std::string write_folder(const std::string& dir, const std::map<std::string, Tensor>& tensors,
                         nlohmann::json conf = {}) {
  std::filesystem::create_directories(dir);
  if (conf.is_null())
    conf = {{"model_type", "bert"},    {"architectures", {"BertForMaskedLM"}},
            {"vocab_size", 37},        {"hidden_size", 8},
            {"num_hidden_layers", 2},  {"num_attention_heads", 2},
            {"intermediate_size", 16}, {"max_position_embeddings", 16},
            {"hidden_act", "gelu"},    {"layer_norm_eps", 1e-12},
            {"type_vocab_size", 2}};
  std::ofstream(dir + "/config.json") << conf.dump(2);
  std::vector<std::pair<std::string, Tensor>> v(tensors.begin(), tensors.end());
  if (!v.empty()) write_safetensors(dir + "/model.safetensors", v);
  return dir;
}

std::vector<float> values(const Tensor& t) { return t.contiguous().to_vector<float>(); }

const Tensor& find(const train::HfImport& r, const std::string& name) {
  for (const auto& [n, t] : r.tensors)
    if (n == name) return t;
  throw std::runtime_error("no tensor " + name);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST(HfImport, StandardNamesMapOntoThePreLnBert) {
  const std::string dir = testing::temp_dir();
  auto hf = hf_tensors("bert.");
  const std::string folder = write_folder(dir + "/hf", hf);
  ASSERT_TRUE(train::is_hf_checkpoint(folder));
  auto model = models::build_model(small_bert(), DType::F32, Device::cpu(), 3);
  const std::vector<float> pooler_init = values(model->params().at("pooler.dense.weight").value);
  const train::HfImport r = train::import_hf_bert(folder, *model);

  // Linear layers keep their places; norms go to the sub-layer whose input they normalise.
  EXPECT_EQ(values(find(r, "encoder.layer.1.attention.key.weight")),
            values(hf["bert.encoder.layer.1.attention.self.key.weight"]));
  EXPECT_EQ(values(find(r, "encoder.layer.0.ffn.dense_out.bias")),
            values(hf["bert.encoder.layer.0.output.dense.bias"]));
  EXPECT_EQ(values(find(r, "encoder.layer.0.ffn_norm.weight")),
            values(hf["bert.encoder.layer.0.attention.output.LayerNorm.weight"]));
  EXPECT_EQ(values(find(r, "encoder.layer.1.attention_norm.bias")),
            values(hf["bert.encoder.layer.0.output.LayerNorm.bias"]));
  EXPECT_EQ(values(find(r, "encoder.final_norm.weight")), values(hf["bert.encoder.layer.1.output.LayerNorm.weight"]));
  EXPECT_EQ(values(find(r, "encoder.layer.0.attention_norm.weight")), std::vector<float>(8, 1.0f));
  EXPECT_EQ(values(find(r, "encoder.layer.0.attention_norm.bias")), std::vector<float>(8, 0.0f));
  // Vocabulary 37 padded to 40 rows of zeros, in the table and the MLM bias.
  const std::vector<float> words = values(find(r, "embeddings.word_embeddings.weight"));
  ASSERT_EQ(words.size(), 40u * 8u);
  const std::vector<float> src = values(hf["bert.embeddings.word_embeddings.weight"]);
  EXPECT_TRUE(std::equal(src.begin(), src.end(), words.begin()));
  EXPECT_TRUE(std::all_of(words.begin() + 37 * 8, words.end(), [](float v) { return v == 0.0f; }));
  EXPECT_EQ(find(r, "lm_head.bias").shape(), (Shape{40}));
  // Segment row 0 folded into every position.
  const std::vector<float> pos = values(find(r, "embeddings.position_embeddings.weight"));
  const std::vector<float> p0 = values(hf["bert.embeddings.position_embeddings.weight"]);
  const std::vector<float> tt = values(hf["bert.embeddings.token_type_embeddings.weight"]);
  for (size_t i = 0; i < pos.size(); ++i) ASSERT_EQ(pos[i], p0[i] + tt[i % 8]) << i;
  // BertForMaskedLM has no pooler / classifier: the model's own initialisation, and a note says so.
  EXPECT_EQ(values(find(r, "pooler.dense.weight")), pooler_init);
  bool noted = false;
  for (const auto& n : r.notes) noted |= n.find("pooler.dense.weight") != std::string::npos;
  EXPECT_TRUE(noted);
  // What the trainer does with it: every parameter present with its shape.
  EXPECT_TRUE(train::load_model_weights(*model, r.tensors, r.source, false).empty());
  EXPECT_EQ(values(model->params().at("encoder.layer.0.ffn.dense_in.weight").value),
            values(hf["bert.encoder.layer.0.intermediate.dense.weight"]));
}

TEST(HfImport, WithoutPrefixTheNextSentenceHeadBecomesTheClassifier) {
  const std::string dir = testing::temp_dir();
  auto hf = hf_tensors("");
  hf["cls.seq_relationship.weight"] = filled({2, 8}, 90);
  hf["cls.seq_relationship.bias"] = filled({2}, 91);
  hf["pooler.dense.weight"] = filled({8, 8}, 92);
  hf["pooler.dense.bias"] = filled({8}, 93);
  auto model = models::build_model(small_bert(), DType::F32, Device::cpu(), 3);
  const train::HfImport r = train::import_hf_bert(write_folder(dir + "/hf", hf), *model);
  EXPECT_EQ(values(find(r, "classifier.weight")), values(hf["cls.seq_relationship.weight"]));
  EXPECT_EQ(values(find(r, "pooler.dense.bias")), values(hf["pooler.dense.bias"]));
}

TEST(HfImport, OtherLayoutsAndMismatchesAreNamed) {
  const std::string dir = testing::temp_dir();
  auto model = models::build_model(small_bert(), DType::F32, Device::cpu(), 3);
  auto conf = [](const std::string& type) {
    return nlohmann::json{{"model_type", type},           {"vocab_size", 37},         {"hidden_size", 8},
                          {"num_hidden_layers", 2},       {"num_attention_heads", 2}, {"intermediate_size", 16},
                          {"max_position_embeddings", 16}};
  };
  std::string e = error_of(
      [&] { train::import_hf_bert(write_folder(dir + "/rob", hf_tensors("roberta."), conf("roberta")), *model); });
  EXPECT_NE(e.find("RoBERTa"), std::string::npos) << e;
  e = error_of([&] { train::import_hf_bert(write_folder(dir + "/dis", {}, conf("distilbert")), *model); });
  EXPECT_NE(e.find("DistilBERT"), std::string::npos) << e;
  // model_type bert, but RoBERTa's tensor names
  e = error_of(
      [&] { train::import_hf_bert(write_folder(dir + "/rob2", hf_tensors("roberta."), conf("bert")), *model); });
  EXPECT_NE(e.find("': a roberta checkpoint"), std::string::npos) << e;
  // another size: every differing key named
  nlohmann::json big = conf("bert");
  big["hidden_size"] = 16;
  big["hidden_act"] = "gelu_new";
  e = error_of([&] { train::import_hf_bert(write_folder(dir + "/big", hf_tensors("bert."), big), *model); });
  EXPECT_NE(e.find("model.hidden_size: the config has 8"), std::string::npos) << e;
  EXPECT_NE(e.find("set hidden_act: gelu_tanh"), std::string::npos) << e;
  // pytorch_model.bin only: the command that converts it
  write_folder(dir + "/bin", {}, conf("bert"));
  std::ofstream(dir + "/bin/pytorch_model.bin") << "PK";
  e = error_of([&] { train::import_hf_bert(dir + "/bin", *model); });
  EXPECT_NE(e.find("scripts/export_hf.py bin-to-safetensors " + dir + "/bin"), std::string::npos) << e;
  // an untied decoder cannot be held
  auto untied = hf_tensors("bert.");
  untied["cls.predictions.decoder.weight"] = filled({37, 8}, 77);
  e = error_of([&] { train::import_hf_bert(write_folder(dir + "/untied", untied), *model); });
  EXPECT_NE(e.find("cls.predictions.decoder.weight differs"), std::string::npos) << e;
  // a missing encoder tensor is never invented
  auto holes = hf_tensors("bert.");
  holes.erase("bert.encoder.layer.1.intermediate.dense.weight");
  e = error_of([&] { train::import_hf_bert(write_folder(dir + "/holes", holes), *model); });
  EXPECT_NE(e.find("encoder.layer.1.ffn.dense_in.weight"), std::string::npos) << e;
  // densetrain's own checkpoint folders are not taken for Hugging Face ones
  std::filesystem::create_directories(dir + "/ck");
  std::ofstream(dir + "/ck/config.json") << "{}";
  std::ofstream(dir + "/ck/checksums.json") << "{}";
  EXPECT_FALSE(train::is_hf_checkpoint(dir + "/ck"));
}

}  // namespace
}  // namespace dense
