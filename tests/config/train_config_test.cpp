// The YAML training configuration (src/config/train_config_yaml.h, docs/config.md).
#include <gtest/gtest.h>

#include <map>
#include <tuple>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "config/train_config_yaml.h"
#include "core/error.h"
#include "models/model.h"
#include "test_files.h"

namespace dense {
namespace {

using testing::contains;
using testing::error_of;
using testing::expect_error;
using testing::temp_dir;
using testing::write_bytes;
using train::load_train_config;
using train::parse_train_config;
using train::train_config_to_yaml;

const std::string kRoot = std::string(DENSE_TEST_DATA_DIR) + "/../..";

train::TrainConfig parse(const std::string& text, const std::vector<std::string>& overrides = {}) {
  return parse_train_config(text, "test.yaml", overrides);
}

std::string parse_error(const std::string& text, const std::vector<std::string>& overrides = {}) {
  return error_of([&] { parse(text, overrides); });
}

TEST(TrainConfig, EmptyTextGivesTheDefaults) {
  for (const std::string text : {"", "# nothing\n", "{}\n", "training:\nmodel:\n"}) {
    SCOPED_TRACE(text);
    const auto c = parse(text);
    EXPECT_EQ(train_config_to_yaml(c), train_config_to_yaml(train::TrainConfig{}));
  }
  const auto c = parse("");
  EXPECT_EQ(c.name, "run");
  EXPECT_EQ(c.training.max_steps, 1000);
  EXPECT_EQ(c.training.precision, "f32");
  EXPECT_EQ(c.training.optimizer.betas[1], 0.999);
  EXPECT_EQ(c.training.schedule.type, "cyclic_poly");
  EXPECT_EQ(c.data.random_token_prob, -1.0);
  EXPECT_EQ(c.model.hidden_size, 1024);
  EXPECT_EQ(c.parallel.backend, "auto");
  EXPECT_FALSE(c.parallel.zero1);
}

TEST(TrainConfig, ReadsEveryKind) {
  const auto c = parse(
      "name: exp1\n"
      "data:\n  train: shards/a\n  mlm_probability: 0.2\n  shuffle: false\n"
      "training:\n  max_steps: 1e3\n  global_batch: 64\n  micro_batch: 16\n  seed: 18446744073709551615\n"
      "  threads: 2\n  device: cuda:1\n"
      "  optimizer: {learning_rate: 3e-4, betas: [0.9, 0.95], eps: 1.0e-16}\n"
      "model:\n  hidden_size: 256\n  num_hidden_layers: 2\n  final_ln_type: ~\n  swiglu_ffn: true\n");
  EXPECT_EQ(c.name, "exp1");
  EXPECT_EQ(c.data.train, "shards/a");
  EXPECT_DOUBLE_EQ(c.data.mlm_probability, 0.2);
  EXPECT_FALSE(c.data.shuffle);
  EXPECT_EQ(c.training.max_steps, 1000);  // an exact integer written as a float
  EXPECT_EQ(c.training.micro_batch, 16);
  EXPECT_EQ(c.training.seed, 18446744073709551615ull);
  EXPECT_EQ(c.training.threads, 2);
  EXPECT_EQ(c.training.device, "cuda:1");
  EXPECT_DOUBLE_EQ(c.training.optimizer.learning_rate, 3e-4);
  EXPECT_DOUBLE_EQ(c.training.optimizer.betas[1], 0.95);
  EXPECT_DOUBLE_EQ(c.training.optimizer.eps, 1e-16);
  EXPECT_EQ(c.model.hidden_size, 256);
  EXPECT_EQ(c.model.num_hidden_layers, 2);
  EXPECT_EQ(std::string(models::config_name(c.model.final_ln_type)), "none");
  EXPECT_TRUE(c.model.swiglu_ffn);
}

// ---- shipped configs ----

int64_t json_model_parameters(const std::string& name) {
  std::ifstream in(kRoot + "/configs/models/" + name);
  return models::count_parameters(models::ModelConfig::from_json(nlohmann::json::parse(in), name));
}

TEST(TrainConfig, GlueConfigsCarryThePapersRecipe) {
  // Spec §2.4 / paper Table 15: task -> (LR, beta2, dropout).
  const std::map<std::string, std::tuple<double, double, double>> recipe = {
      {"cola", {4e-5, 0.99, 0.05}}, {"mnli", {1e-5, 0.9, 0.05}}, {"mrpc", {5e-5, 0.98, 0.05}},
      {"qnli", {1e-5, 0.9, 0.05}},  {"qqp", {1e-5, 0.98, 0.05}}, {"rte", {2e-5, 0.98, 0.05}},
      {"sst2", {1e-5, 0.9, 0.05}},  {"stsb", {4e-5, 0.98, 0.0}}};
  int seen = 0;
  for (const auto& [task, r] : recipe) {
    SCOPED_TRACE(task);
    const auto c = load_train_config(kRoot + "/configs/glue/" + task + ".yaml");
    const auto [lr, beta2, dropout] = r;
    EXPECT_EQ(c.name, "glue-" + task);
    EXPECT_EQ(c.training.optimizer.learning_rate, lr);
    EXPECT_EQ(c.training.optimizer.betas[0], 0.9);
    EXPECT_EQ(c.training.optimizer.betas[1], beta2);
    EXPECT_EQ(c.training.optimizer.eps, 1e-16);
    EXPECT_EQ(c.training.optimizer.weight_decay, 0.0);
    EXPECT_EQ(c.training.schedule.type, "constant");
    EXPECT_EQ(c.training.epochs, 20);
    EXPECT_TRUE(c.training.zero_init_pooler);  // --zero_init_pooler, all GLUE runs
    EXPECT_EQ(c.training.global_batch, 32);
    EXPECT_EQ(c.model.hidden_dropout_prob, dropout);
    EXPECT_TRUE(c.model.classifier_bias);
    EXPECT_EQ(std::string(models::config_name(c.model.pooler_function)), "mean");
    EXPECT_EQ(std::string(models::config_name(c.model.pre_attn_ln_type)),
              task == "cola" ? "max_norm" : "scaled_max_norm");
    EXPECT_GT(models::count_parameters(c.model), 300'000'000);
    ++seen;
  }
  EXPECT_EQ(seen, 8);
}

TEST(TrainConfig, LraConfigsCarryThePapersRecipe) {
  // Spec §2.5 / paper Table 14, one row per config: model shape, pooling, dropout, batch, LR schedule, epochs.
  struct Row {
    int64_t d, L, H, r, w, N;
    std::string emb_norm, pool;
    bool pooler_dense;
    double hidden_dropout;
    int64_t global_batch, micro_batch;
    double lr, wd;
    std::string schedule;
    int64_t cycle;
    double warmup, degree;
    int64_t epochs;
  };
  const std::map<std::string, Row> recipe = {
      {"listops",
       {512, 9, 8, 2, 20, 2000, "max_norm", "first", true, 0.1, 128, 0, 1e-3, 0.1, "cyclic_poly", 75000, 0.1, 0, 105}},
      {"text",
       {512, 9, 8, 2, 10, 4000, "max_norm", "mean", true, 0.1, 100, 0, 2e-3, 0.1, "cyclic_poly", 12800, 0.1, 0, 65}},
      {"retrieval",
       {128, 6, 4, 4, 10, 4000, "max_norm", "first", true, 0.05, 100, 0, 1e-3, 0.0, "cyclic_poly", 150000, 0.05, 0,
        40}},
      {"image",
       {256, 9, 4, 2, 64, 1024, "hardtanh", "mean", true, 0.05, 100, 0, 1e-2, 0.1, "cyclic_poly", 45000, 0.05, 1, 405}},
      {"pathfinder",
       {128, 6, 8, 1, 256, 1024, "hardtanh", "first", false, 0.05, 100, 0, 1e-3, 0.1, "cyclic_poly", 320000, 0.1, 0,
        210}},
      {"pathx_stage_a",
       {128, 6, 8, 1, 1024, 16384, "hardtanh", "first", true, 0.1, 4000, 100, 1e-2, 0.1, "constant", 0, 0, 1, 302}},
      {"pathx",
       {128, 6, 8, 1, 1024, 16384, "hardtanh", "first", true, 0.05, 4000, 100, 1e-2, 0.1, "cyclic_poly", 4000, 0.2, 0,
        210}}};
  int seen = 0;
  for (const auto& entry : std::filesystem::directory_iterator(kRoot + "/configs/lra")) {
    if (entry.path().extension() != ".yaml") continue;
    const std::string task = entry.path().stem().string();
    SCOPED_TRACE(task);
    ASSERT_TRUE(recipe.count(task)) << "add the new config to this test";
    const Row& r = recipe.at(task);
    const auto c = load_train_config(entry.path().string());
    const models::ModelConfig& m = c.model;
    EXPECT_EQ(c.name, "lra-" + task);
    EXPECT_EQ(std::make_tuple(m.hidden_size, m.num_hidden_layers, m.num_attention_heads, m.intermediate_size,
                              m.window_size, m.max_position_embeddings),
              std::make_tuple(r.d, r.L, r.H, r.r, r.w, r.N));
    EXPECT_EQ(m.model_type, models::ModelType::Danet);
    EXPECT_EQ(std::string(models::config_name(m.pos_emb_type)), "relpe");
    EXPECT_EQ(std::string(models::config_name(m.relpe_type)), "cosine");
    EXPECT_TRUE(m.local_attention);
    EXPECT_EQ(models::local_scheme_text(m.local_scheme), "l_sl_g");
    EXPECT_EQ(m.initializer_range, 0.2);
    EXPECT_FALSE(m.classifier_bias);
    EXPECT_EQ(std::string(models::config_name(m.final_ln_type)), "none");
    EXPECT_EQ(std::string(models::config_name(m.embedding_ln_type)), r.emb_norm);
    EXPECT_EQ(std::string(models::config_name(m.pooler_function)), r.pool);
    EXPECT_EQ(m.pooler_no_dense, !r.pooler_dense);
    EXPECT_EQ(m.hidden_dropout_prob, r.hidden_dropout);
    EXPECT_EQ(m.pair_matching, task == "retrieval");
    const auto& t = c.training;
    EXPECT_EQ(t.global_batch, r.global_batch);
    EXPECT_EQ(t.micro_batch, r.micro_batch);
    EXPECT_EQ(t.epochs, r.epochs);
    EXPECT_EQ(t.optimizer.learning_rate, r.lr);
    EXPECT_EQ(t.optimizer.weight_decay, r.wd);
    EXPECT_EQ(t.optimizer.betas[0], 0.9);
    EXPECT_EQ(t.optimizer.betas[1], 0.9);
    EXPECT_EQ(t.optimizer.eps, 1e-16);
    EXPECT_EQ(t.schedule.type, r.schedule);
    EXPECT_EQ(t.schedule.cycle_steps, r.cycle);
    EXPECT_EQ(t.schedule.warmup_ratio, r.warmup);
    EXPECT_EQ(t.schedule.degree, r.degree);
    EXPECT_GT(models::count_parameters(m), 0);
    ++seen;
  }
  EXPECT_EQ(seen, int(recipe.size()));
}

TEST(TrainConfig, CpuSizedConfigsPairDanetWithAnEqualBert) {
  // configs/{lra,glue}/cpu and configs/cpu (the long-context stages): each DANet config <task>.yaml has a
  // softmax BERT baseline <task>_bert.yaml of the same shape (d, L, H, FFN width, N, labels, vocabulary) trained
  // the same way (the whole training section).
  int pairs = 0;
  for (const std::string kind : {"lra", "glue", "cpu"}) {
    const std::string dir = kRoot + "/configs/" + (kind == "cpu" ? "cpu" : kind + "/cpu");
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
      const std::string stem = entry.path().stem().string();
      if (entry.path().extension() != ".yaml" || stem.ends_with("_bert")) continue;
      SCOPED_TRACE(kind + "/" + stem);
      const auto danet = load_train_config(entry.path().string());
      const auto bert = load_train_config(dir + "/" + stem + "_bert.yaml");
      EXPECT_EQ(danet.model.model_type, models::ModelType::Danet);
      EXPECT_EQ(bert.model.model_type, models::ModelType::Bert);
      const std::string name = kind == "cpu" ? stem : kind + "-" + stem + "-cpu";
      EXPECT_EQ(danet.name, name);
      EXPECT_EQ(bert.name, name + (kind == "cpu" ? "_bert" : "-bert"));
      const auto shape = [](const models::ModelConfig& m, int64_t ffn) {
        return std::make_tuple(m.hidden_size, m.num_hidden_layers, m.num_attention_heads, ffn,
                               m.max_position_embeddings, m.num_labels, m.vocab_size);
      };
      EXPECT_EQ(shape(danet.model, danet.model.intermediate_size * danet.model.hidden_size),
                shape(bert.model, bert.model.intermediate_size));
      train::TrainConfig a = danet, b = bert;
      a.name = b.name = "";
      a.model = b.model = models::ModelConfig{};
      EXPECT_EQ(train_config_to_yaml(a), train_config_to_yaml(b));
      EXPECT_LT(models::count_parameters(danet.model), models::count_parameters(bert.model));  // no K, V, O
      ++pairs;
    }
  }
  EXPECT_EQ(pairs, 6);  // ListOps; SST-2 and CoLA; long context at 128, 4K and 16K
}

TEST(TrainConfig, ShippedConfigsLoadAndBuild) {
  const std::string dir = kRoot + "/configs";
  int seen = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".yaml") continue;
    const std::string name = entry.path().filename().string();
    SCOPED_TRACE(name);
    const auto c = load_train_config(entry.path().string());
    const int64_t params = models::count_parameters(c.model);
    EXPECT_EQ(c.name + ".yaml", name);
    // A saved config loads back to the same text.
    EXPECT_EQ(train_config_to_yaml(parse_train_config(train_config_to_yaml(c), "saved.yaml")), train_config_to_yaml(c));
    if (name == "tiny.yaml") {
      const int64_t d = 128, L = 4, V = 30528;
      const int64_t expected = L * (d * d + 2 * d * 4 * d)  // W_Q + expanded FFN per layer
                               + V * d + 128 * d            // word (tied with the decoder) + learned positions
                               + d * d + d + V              // LM transform dense, its standard_ln gain, output bias
                               + d * d + 2 * d + 2;         // pooler dense (no biases), classifier with bias
      EXPECT_EQ(params, expected);
      EXPECT_EQ(c.data.train, "data/shards/packed128");
      EXPECT_EQ(c.data.validation, "data/shards/packed128_valid");
      EXPECT_EQ(c.training.global_batch, 16);
      EXPECT_EQ(c.training.max_steps, 600);
      EXPECT_EQ(c.training.device, "cpu");
      EXPECT_EQ(c.training.optimizer.betas[1], 0.98);
      EXPECT_EQ(c.training.schedule.warmup_ratio, 0.05);
      EXPECT_EQ(c.checkpoint.every_steps, 200);
      EXPECT_EQ(c.logging.every_steps, 10);
    } else if (name == "bert512.yaml") {
      EXPECT_EQ(c.model.to_json(), load_train_config(dir + "/bert512.yaml").model.to_json());
      EXPECT_EQ(params, json_model_parameters("danet_bert_large_seq512.json"));
      EXPECT_NEAR(double(params) / 1e6, 335.0, 1.0);
      EXPECT_EQ(c.training.precision, "bf16");
      EXPECT_EQ(c.training.global_batch, 1024);
      EXPECT_EQ(c.training.micro_batch, 128);
      EXPECT_EQ(c.training.optimizer.eps, 1e-16);
      EXPECT_EQ(c.training.optimizer.betas[1], 0.9);
      EXPECT_EQ(c.training.schedule.type, "linear");
      EXPECT_EQ(c.training.schedule.warmup_ratio, 0.015);
      EXPECT_EQ(c.training.optimizer.learning_rate, 4e-4);
      EXPECT_EQ(c.training.max_steps, 500000);
    } else if (name == "bert16k.yaml") {
      // The N = 512 model without its 512 x 1024 learned position table (RoPE has no parameters).
      EXPECT_EQ(params, json_model_parameters("danet_bert_large_seq512.json") - 512 * 1024);
      EXPECT_EQ(c.model.max_position_embeddings, 16384);
      EXPECT_EQ(std::string(models::config_name(c.model.relpe_type)), "rope");
      EXPECT_EQ(c.model.relpe_scheme, "q,k");
      EXPECT_TRUE(c.model.local_attention);
      EXPECT_EQ(c.model.layer_kinds()[2], nn::LayerKind::Global);
      EXPECT_EQ(c.data.seq_len, 16384);
      EXPECT_EQ(c.training.global_batch * c.data.seq_len, 1024 * 512);
    } else if (name == "bert_baseline.yaml") {
      EXPECT_EQ(c.model.model_type, models::ModelType::Bert);
      EXPECT_EQ(params, json_model_parameters("bert_large_baseline.json"));
      EXPECT_EQ(c.training.precision, "f16");
      EXPECT_EQ(c.training.schedule.warmup_ratio, 0.03);
      EXPECT_EQ(c.training.max_steps, 250000);
    } else if (name == "tiny_sparse.yaml") {
      // tiny.yaml with two heads over a `fixed` pattern: the same parameters (heads split W_Q, add none).
      EXPECT_EQ(params, models::count_parameters(load_train_config(dir + "/tiny.yaml").model));
      const auto spec = c.model.sparse_pattern();
      ASSERT_TRUE(spec.has_value());
      EXPECT_EQ(nn::describe(*spec),
                nn::describe(nn::parse_pattern("fixed:stride=16,summary=4,heads_mode=multihead", "t")));
      EXPECT_EQ(c.model.num_attention_heads, 2);
      EXPECT_EQ(c.data.train, "data/shards/packed128");
    } else if (name == "small_danet.yaml" || name == "small_bert.yaml") {
      // docs/results.md's pair: the same shape (d 128, L 4, H 2, FFN 512, N 128), data and training.
      const bool danet = name == "small_danet.yaml";
      EXPECT_EQ(params, json_model_parameters(danet ? "small_danet.json" : "small_bert.json"));
      EXPECT_EQ(c.model.model_type, danet ? models::ModelType::Danet : models::ModelType::Bert);
      EXPECT_EQ(c.model.hidden_size, 128);
      EXPECT_EQ(c.model.num_hidden_layers, 4);
      EXPECT_EQ(c.model.num_attention_heads, 2);
      EXPECT_EQ(danet ? c.model.intermediate_size * 128 : c.model.intermediate_size, 512);
      EXPECT_EQ(c.data.train, "data/shards/pretrain128");
      EXPECT_EQ(c.data.seq_len, 128);
      train::TrainConfig other = load_train_config(dir + (danet ? "/small_bert.yaml" : "/small_danet.yaml"));
      train::TrainConfig self = c;
      other.name = self.name = "";
      other.model = self.model = models::ModelConfig{};
      EXPECT_EQ(train_config_to_yaml(self), train_config_to_yaml(other));
    } else {
      ADD_FAILURE() << "add the new config to this test";
    }
    ++seen;
  }
  EXPECT_EQ(seen, 7);
}

TEST(TrainConfig, ShippedModelSectionEqualsTheModelJson) {
  std::ifstream in(kRoot + "/configs/models/danet_bert_large_seq512.json");
  const auto json_model = models::ModelConfig::from_json(nlohmann::json::parse(in));
  EXPECT_EQ(load_train_config(kRoot + "/configs/bert512.yaml").model.to_json(), json_model.to_json());
}

// ---- includes ----

TEST(TrainConfig, IncludesMergeDeeplyInOrder) {
  const std::string dir = temp_dir();
  std::filesystem::create_directories(dir + "/sub/models");
  write_bytes(dir + "/sub/base.yaml",
              "training:\n  max_steps: 10\n  optimizer:\n    learning_rate: 0.1\n    betas: [0.8, 0.8]\n"
              "model:\n  include: models/m.json\n");
  write_bytes(dir + "/sub/models/m.json", R"({"hidden_size": 64, "num_hidden_layers": 2})");
  write_bytes(dir + "/sub/second.yaml", "training:\n  max_steps: 20\n  global_batch: 8\n");
  write_bytes(dir + "/run.yaml",
              "include: [sub/base.yaml, sub/second.yaml]\n"
              "training:\n  optimizer:\n    betas: [0.9, 0.7]\n"
              "model:\n  num_hidden_layers: 3\n");
  const auto c = load_train_config(dir + "/run.yaml");
  EXPECT_EQ(c.training.max_steps, 20);  // the later include wins
  EXPECT_EQ(c.training.global_batch, 8);
  EXPECT_DOUBLE_EQ(c.training.optimizer.learning_rate, 0.1);  // maps merge key by key
  EXPECT_DOUBLE_EQ(c.training.optimizer.betas[0], 0.9);       // lists replace
  EXPECT_DOUBLE_EQ(c.training.optimizer.betas[1], 0.7);
  EXPECT_EQ(c.model.hidden_size, 64);       // nested include, relative to base.yaml's folder
  EXPECT_EQ(c.model.num_hidden_layers, 3);  // the file's own keys win over its includes

  // A single name works too, and parse_train_config resolves against source_name's folder.
  const auto d = parse_train_config("include: sub/second.yaml\n", dir + "/virtual.yaml");
  EXPECT_EQ(d.training.max_steps, 20);
}

TEST(TrainConfig, IncludeErrors) {
  const std::string dir = temp_dir();
  write_bytes(dir + "/a.yaml", "include: b.yaml\n");
  write_bytes(dir + "/b.yaml", "training:\n  max_steps: 5\ninclude: [a.yaml]\n");
  expect_error([&] { load_train_config(dir + "/a.yaml"); }, {"include cycle", "a.yaml", "b.yaml"});

  write_bytes(dir + "/missing.yaml", "name: x\ninclude: nope.yaml\n");
  expect_error([&] { load_train_config(dir + "/missing.yaml"); },
               {"missing.yaml:2: include", "cannot read", "nope.yaml"});

  write_bytes(dir + "/bad_inner.yaml", "training:\n  max_step: 3\n");
  write_bytes(dir + "/outer.yaml", "include: bad_inner.yaml\n");
  // The error names the included file and its line.
  expect_error([&] { load_train_config(dir + "/outer.yaml"); },
               {"bad_inner.yaml:2: training.max_step: unknown key; did you mean 'training.max_steps'?"});

  write_bytes(dir + "/list.yaml", "- 1\n");
  write_bytes(dir + "/inc_list.yaml", "include: list.yaml\n");
  expect_error([&] { load_train_config(dir + "/inc_list.yaml"); }, {"list.yaml:1", "expected a mapping"});
  expect_error([&] { parse("include: {a: 1}\n"); }, {"test.yaml:1: include: expected a file name"});
  expect_error([&] { load_train_config(dir + "/absent.yaml"); }, {"cannot read", "absent.yaml"});
}

// ---- overrides ----

TEST(TrainConfig, Overrides) {
  const auto c =
      parse("training:\n  max_steps: 5\n  optimizer:\n    learning_rate: 0.1\n",
            {"training.max_steps=7", "training.optimizer.learning_rate=3e-4", "training.recompute=true",
             "training.optimizer.betas=[0.9, 0.95]", "name=my run", "data.validation=", "model.hidden_size=256",
             "model.pos_emb_type=relpe", "model.relpe_type=rope", "training.schedule={type: constant, lr_offset: 0.5}",
             "training.device='cuda:0'"});
  EXPECT_EQ(c.training.max_steps, 7);
  EXPECT_DOUBLE_EQ(c.training.optimizer.learning_rate, 3e-4);
  EXPECT_TRUE(c.training.recompute);
  EXPECT_DOUBLE_EQ(c.training.optimizer.betas[1], 0.95);
  EXPECT_EQ(c.name, "my run");
  EXPECT_EQ(c.data.validation, "");
  EXPECT_EQ(c.model.hidden_size, 256);
  EXPECT_EQ(std::string(models::config_name(c.model.relpe_type)), "rope");
  EXPECT_EQ(c.training.schedule.type, "constant");
  EXPECT_DOUBLE_EQ(c.training.schedule.lr_offset, 0.5);
  EXPECT_EQ(c.training.device, "cuda:0");
  // Applied in order, after the file.
  EXPECT_EQ(parse("", {"training.max_steps=3", "training.max_steps=4"}).training.max_steps, 4);
}

TEST(TrainConfig, OverrideErrors) {
  EXPECT_EQ(parse_error("", {"training.optimizer.learning_rat=1"}),
            "override 'training.optimizer.learning_rat=1': training.optimizer.learning_rat: unknown key; did you "
            "mean 'training.optimizer.learning_rate'?");
  EXPECT_TRUE(contains(parse_error("", {"model.hiden_size=3"}), "did you mean 'model.hidden_size'?"));
  EXPECT_TRUE(contains(parse_error("", {"training.max_steps"}), "expected key.path=value"));
  EXPECT_TRUE(contains(parse_error("", {"include=x.yaml"}), "unknown key"));
  EXPECT_EQ(parse_error("", {"training.precision=fp8"}),
            "override 'training.precision=fp8': training.precision: 'fp8' is not one of f32, bf16, f16");
  EXPECT_TRUE(contains(parse_error("", {"training.max_steps=many"}),
                       "override 'training.max_steps=many': training.max_steps: expected an integer, got 'many'"));
  EXPECT_TRUE(contains(parse_error("", {"training.max_steps=[1"}), "override 'training.max_steps=[1': invalid YAML"));
  EXPECT_TRUE(contains(parse_error("", {"model.window_size=3", "model.local_attention=true"}),
                       "override 'model.window_size=3': model.window_size"));
}

// ---- errors in files ----

TEST(TrainConfig, UnknownKeysNameFileLineAndSuggest) {
  EXPECT_EQ(parse_error("name: a\ntraining:\n  max_steps: 5\n  optimzer:\n    learning_rate: 1\n"),
            "test.yaml:4: training.optimzer: unknown key; did you mean 'training.optimizer'?");
  EXPECT_EQ(parse_error("trainig:\n  max_steps: 5\n"), "test.yaml:1: trainig: unknown key; did you mean 'training'?");
  // A key in the wrong section.
  EXPECT_TRUE(
      contains(parse_error("training:\n  learning_rate: 1\n"),
               "test.yaml:2: training.learning_rate: unknown key; did you mean 'training.optimizer.learning_rate'?"));
  EXPECT_EQ(parse_error("model:\n  hidden_sise: 5\n"),
            "test.yaml:2: model.hidden_sise: unknown key; did you mean 'model.hidden_size'?");
  // Nothing close: the keys of that section.
  EXPECT_TRUE(contains(parse_error("logging:\n  zzzzzzzz: 1\n"),
                       "test.yaml:2: logging.zzzzzzzz: unknown key; known keys in logging: every_steps, tensorboard"));
  // Keys under a leaf are unknown too.
  EXPECT_TRUE(
      contains(parse_error("parallel:\n  backend:\n    x: 1\n"), "test.yaml:2: parallel.backend: expected a string"));
}

TEST(TrainConfig, WrongTypes) {
  EXPECT_EQ(parse_error("training:\n  max_steps: ten\n"),
            "test.yaml:2: training.max_steps: expected an integer, got 'ten'");
  EXPECT_EQ(parse_error("training:\n  max_steps: 1.5\n"),
            "test.yaml:2: training.max_steps: expected an integer, got 1.5");
  EXPECT_EQ(parse_error("training:\n  max_steps: \"5\"\n"),
            "test.yaml:2: training.max_steps: expected an integer, got the string '5'");
  EXPECT_EQ(parse_error("training: [1, 2]\n"), "test.yaml:1: training: expected a mapping of settings, got a list");
  EXPECT_EQ(parse_error("training:\n  optimizer: adamw\n"),
            "test.yaml:2: training.optimizer: expected a mapping of settings, got 'adamw'");
  EXPECT_EQ(parse_error("training:\n  recompute: yes\n"),
            "test.yaml:2: training.recompute: expected true or false, got 'yes'");
  EXPECT_EQ(parse_error("training:\n  optimizer:\n    betas: [0.9]\n"),
            "test.yaml:3: training.optimizer.betas: expected a list of two numbers, got a list");
  EXPECT_EQ(parse_error("training:\n  optimizer:\n    betas: [0.9, x]\n"),
            "test.yaml:3: training.optimizer.betas: expected a number, got 'x'");
  EXPECT_EQ(parse_error("name: [a]\n"), "test.yaml:1: name: expected a string, got a list");
  EXPECT_EQ(parse_error("training:\n  eval_every:\n"),
            "test.yaml:2: training.eval_every: expected an integer, got nothing (null)");
  EXPECT_EQ(parse_error("training:\n  optimizer:\n    eps: .inf\n"),
            "test.yaml:3: training.optimizer.eps: expected a finite number, got '.inf'");
  EXPECT_TRUE(contains(parse_error("training:\n  max_steps: 99999999999999999999\n"), "is out of range"));
  EXPECT_TRUE(contains(parse_error("training:\n  threads: 3000000000\n"), "is out of range"));
  EXPECT_EQ(parse_error("training:\n  seed: -1\n"), "test.yaml:2: training.seed: must be >= 0, got -1");
  EXPECT_EQ(parse_error("model:\n  hidden_size: 1.5\n"),
            "test.yaml:2: model.hidden_size: expected an integer, got 1.5");
  EXPECT_EQ(parse_error("model:\n  swiglu_ffn: 1\n"), "test.yaml:2: model.swiglu_ffn: expected true or false, got '1'");
  EXPECT_EQ(parse_error("model: 3\n"), "test.yaml:1: model: expected a mapping of model settings, got '3'");
  EXPECT_EQ(parse_error("- a\n- b\n"),
            "test.yaml:1: expected a mapping of config sections at the top level, got a list");
  EXPECT_EQ(parse("model:\n  hidden_size: 2.56e2\n  num_attention_heads: 2\n").model.hidden_size, 256);
}

TEST(TrainConfig, BadValues) {
  EXPECT_EQ(parse_error("training:\n  precision: fp8\n"),
            "test.yaml:2: training.precision: 'fp8' is not one of f32, bf16, f16");
  EXPECT_EQ(parse_error("training:\n  optimizer:\n    type: sgd\n"),
            "test.yaml:3: training.optimizer.type: 'sgd' is not one of adamw, lamb");
  EXPECT_EQ(parse_error("training:\n  schedule: {type: cos}\n"),
            "test.yaml:2: training.schedule.type: 'cos' is not one of cyclic_poly, constant, linear, cosine");
  EXPECT_TRUE(contains(parse_error("data:\n  format: csv\n"), "data.format: 'csv' is not one of auto, packed, bert"));
  EXPECT_TRUE(contains(parse_error("parallel:\n  backend: gloo\n"), "'gloo' is not one of auto, none, mpi, nccl"));
  EXPECT_TRUE(contains(parse_error("logging:\n  level: loud\n"), "logging.level: 'loud' is not one of trace"));
  EXPECT_EQ(parse_error("training:\n  global_batch: 0\n"), "test.yaml:2: training.global_batch: must be >= 1, got 0");
  EXPECT_EQ(parse_error("training:\n  max_steps: 0\n"), "test.yaml:2: training.max_steps: must be >= 1, got 0");
  EXPECT_EQ(parse_error("training:\n  global_batch: 1024\n  micro_batch: 100\n"),
            "test.yaml:3: training.micro_batch: 100 does not divide training.global_batch 1024");
  EXPECT_EQ(parse_error("data:\n  mlm_probability: 1.5\n"),
            "test.yaml:2: data.mlm_probability: must be in [0, 1], got 1.5");
  EXPECT_EQ(parse_error("training:\n  optimizer:\n    betas: [0.9, 1.0]\n"),
            "test.yaml:3: training.optimizer.betas: must be in [0, 1), got 1.0");
  EXPECT_EQ(parse_error("checkpoint:\n  keep_last: -1\n"), "test.yaml:2: checkpoint.keep_last: must be >= 0, got -1");
  EXPECT_EQ(parse_error("training:\n  optimizer:\n    eps: 0\n"),
            "test.yaml:3: training.optimizer.eps: must be > 0, got 0");
  EXPECT_EQ(parse_error("training:\n  device: gpu\n"),
            "test.yaml:2: training.device: 'gpu' is not one of cpu, cuda, cuda:N");
  EXPECT_TRUE(contains(parse_error("training:\n  device: 'cuda:x'\n"), "is not one of cpu, cuda, cuda:N"));
  EXPECT_TRUE(
      contains(parse_error("data:\n  mask_token_prob: 0.8\n  random_token_prob: 0.3\n"),
               "test.yaml:3: data.random_token_prob: data.mask_token_prob 0.8 + data.random_token_prob 0.3 exceeds 1"));
  EXPECT_TRUE(contains(parse_error("data:\n  seq_len: 1024\n"),
                       "test.yaml:2: data.seq_len: 1024 exceeds model.max_position_embeddings 512"));
  EXPECT_EQ(parse_error("name: ''\n"), "test.yaml:1: name: must not be empty");
  // Model values go through ModelConfig::validate, pointing at the key's line.
  EXPECT_TRUE(contains(parse_error("model:\n  local_attention: true\n  window_size: 3\n"),
                       "test.yaml:3: model.window_size must be even"));
  EXPECT_TRUE(
      contains(parse_error("model:\n  model_type: gpt\n"), "test.yaml:2: model.model_type: unknown model type 'gpt'"));
  EXPECT_TRUE(contains(parse_error("model:\n  pre_attn_ln_type: fancy\n"), "test.yaml:2: model.pre_attn_ln_type"));
}

TEST(TrainConfig, MalformedYamlIsAnError) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"training:\n\tmax_steps: 5\n", "test.yaml:2"},
      {"training: [1, 2\n", "test.yaml:2"},
      {"training: {max_steps: 5\n", "test.yaml:2: invalid YAML"},
      {"training:\n  max_steps: 5\n max_steps: 6\n", "test.yaml:3"},
      {"a: b: c\n", "test.yaml:1"},
      {"training:\n  max_steps: 5\n  max_steps: 6\n", "test.yaml:3: duplicate key 'max_steps' (first at line 2)"},
      {"name: a\n---\nname: b\n", "test.yaml:3: more than one YAML document"},
      {"? [1, 2]\n: 3\n", "test.yaml:1: keys must be plain names"},
      {"training:\n  max_steps: &a 5\n  eval_every: *b\n", "test.yaml"},
  };
  for (const auto& [text, part] : cases) {
    SCOPED_TRACE(text);
    const std::string e = parse_error(text);
    EXPECT_TRUE(contains(e, part)) << e;
  }
  EXPECT_TRUE(contains(parse_error("training:\n\tmax_steps: 5\n"), "line 2 indents with a tab"));
  // Deep nesting: yaml-cpp's own depth limit, or ours.
  EXPECT_TRUE(contains(parse_error("a: " + std::string(5000, '[') + std::string(5000, ']') + "\n"),
                       "test.yaml:1: invalid YAML"));
  std::string deep = "a:\n";
  for (int i = 1; i <= 100; ++i) deep += std::string(2 * size_t(i), ' ') + "b:\n";
  EXPECT_TRUE(contains(parse_error(deep), "nested deeper than"));
  EXPECT_TRUE(contains(parse_error(std::string("name: \xff\xfe\x00\x01\n", 11)), "test.yaml")) << "binary bytes";
}

TEST(TrainConfig, MutatedConfigsNeverCrash) {
  // Random edits of a real config either load or fail with a dense::Error (never another exception).
  const std::string base = testing::read_bytes(kRoot + "/configs/tiny.yaml");
  const std::string alphabet = " \t\n:[]{}-,#'\"&*!|>?%@`0123456789.eE";
  std::mt19937 rng(7);
  int errors = 0, loaded = 0;
  for (int i = 0; i < 600; ++i) {
    std::string text = base;
    const int edits = 1 + int(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t pos = rng() % (text.size() + 1);
      switch (rng() % 3) {
        case 0: text.insert(pos, 1, alphabet[rng() % alphabet.size()]); break;
        case 1:
          if (pos < text.size()) text.erase(pos, 1 + rng() % 8);
          break;
        default:
          if (pos < text.size()) text[pos] = alphabet[rng() % alphabet.size()];
          break;
      }
    }
    try {
      parse(text);
      ++loaded;
    } catch (const Error&) {
      ++errors;
    } catch (const std::exception& ex) {
      ADD_FAILURE() << "not a dense::Error: " << ex.what() << "\n--- text ---\n" << text;
    }
  }
  EXPECT_GT(errors, 0);
  EXPECT_GT(loaded, 0);
}

// ---- dump, hash, docs ----

TEST(TrainConfig, YamlRoundTrip) {
  auto c = parse("");
  c.name = "odd: name # with \"quotes\" and \\ \t tab";
  c.run_dir = "";
  c.data.train = "123";
  c.data.validation = "true";
  c.data.vocab = "~";
  c.checkpoint.dir = "-dash";
  c.training.device = "cuda:3";
  c.training.optimizer.learning_rate = 1.0 / 3.0;
  c.training.optimizer.eps = 1e-300;
  c.training.loss_scale_init = 65536;
  c.training.seed = 18446744073709551615ull;
  c.model.relpe_scheme = "q,k";
  c.model.layer_norm_eps = 1e-12;
  const std::string yaml = train_config_to_yaml(c);
  const auto back = parse_train_config(yaml, "saved.yaml");
  EXPECT_EQ(train_config_to_yaml(back), yaml);
  EXPECT_EQ(back.name, c.name);
  EXPECT_EQ(back.data.train, "123");
  EXPECT_EQ(back.data.validation, "true");
  EXPECT_EQ(back.data.vocab, "~");
  EXPECT_EQ(back.training.optimizer.learning_rate, 1.0 / 3.0);  // bit-exact
  EXPECT_EQ(back.training.optimizer.eps, 1e-300);
  EXPECT_EQ(back.training.seed, c.training.seed);
  EXPECT_EQ(back.model.relpe_scheme, "q,k");
  EXPECT_TRUE(contains(yaml, "\n  loss_scale_init: 65536.0\n"));
  EXPECT_TRUE(contains(yaml, "\n  optimizer:\n    type: adamw\n"));
  // Every key is written.
  for (const auto& key : train::train_config_keys())
    EXPECT_TRUE(contains(yaml, std::string(key.substr(key.rfind('.') + 1)) + ":")) << key;
}

TEST(TrainConfig, HashFollowsTheResolvedYaml) {
  const auto a = parse("");
  auto b = a;
  EXPECT_EQ(train::train_config_hash(a), train::train_config_hash(b));
  EXPECT_EQ(train::train_config_hash(a).size(), 64u);
  b.training.optimizer.learning_rate *= 2;
  EXPECT_NE(train::train_config_hash(a), train::train_config_hash(b));
  // Written differently, resolved the same: the same hash.
  EXPECT_EQ(train::train_config_hash(parse("training: {max_steps: 1000}\n")), train::train_config_hash(a));
}

TEST(TrainConfig, ReferenceCoversEveryKey) {
  const std::string md = train::train_config_reference_markdown();
  for (const auto& key : train::train_config_keys()) {
    if (key == "model" || key == "data" || key == "training" || key == "training.optimizer" ||
        key == "training.schedule" || key == "checkpoint" || key == "logging" || key == "parallel")
      EXPECT_TRUE(contains(md, "### `" + key + "`")) << key;
    else
      EXPECT_TRUE(contains(md, "| `" + key + "` |")) << key;
  }
}

TEST(TrainConfig, DocsAreInSync) {
  // docs/config.md holds train_config_reference_markdown() between the markers. To regenerate:
  //   DENSE_UPDATE_DOCS=1 build/tests/dense_unit_tests --gtest_filter=TrainConfig.DocsAreInSync
  const std::string path = kRoot + "/docs/config.md";
  const std::string begin = "<!-- BEGIN GENERATED: train_config_reference_markdown() -->\n";
  const std::string end = "<!-- END GENERATED -->\n";
  const std::string doc = testing::read_bytes(path);
  const size_t b = doc.find(begin), e = doc.find(end);
  ASSERT_NE(b, std::string::npos) << path << " lacks the line " << begin;
  ASSERT_NE(e, std::string::npos) << path << " lacks the line " << end;
  ASSERT_LT(b, e);
  const std::string expected_doc =
      doc.substr(0, b + begin.size()) + train::train_config_reference_markdown() + doc.substr(e);
  if (doc == expected_doc) return;
  if (const char* update = std::getenv("DENSE_UPDATE_DOCS"); update && std::string(update) == "1") {
    write_bytes(path, expected_doc);
    return;
  }
  const std::string fresh = (std::filesystem::path(::testing::TempDir()) / "config.md").string();
  write_bytes(fresh, expected_doc);
  ADD_FAILURE() << "docs/config.md is out of date with the schema in src/config/train_config_yaml.cpp. The "
                   "regenerated file is "
                << fresh << ": cp " << fresh << " docs/config.md, or run DENSE_UPDATE_DOCS=1 "
                << "build/tests/dense_unit_tests --gtest_filter=TrainConfig.DocsAreInSync";
}

}  // namespace
}  // namespace dense
