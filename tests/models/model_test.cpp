// Whole-model properties: parameter counts (docs/model.md §1.15), finite-difference gradients of 2-layer models,
// padding invariance, recomputation, initialisation statistics and config errors.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include "gradcheck.h"
#include "model_fixtures.h"
#include "models/model.h"

using namespace dense;
using dense::testing::check_model_gradients;
using dense::testing::make_batch;
using dense::testing::randomize;
using nlohmann::json;

namespace {

models::ModelConfig small_danet(json extra = json::object()) {
  json j = {{"model_type", "danet"},
            {"vocab_size", 29},
            {"hidden_size", 8},
            {"num_hidden_layers", 2},
            {"num_attention_heads", 2},
            {"intermediate_size", 2},
            {"max_position_embeddings", 12},
            {"embedding_ln_type", "max_norm"},
            {"final_ln_type", "max_norm"},
            {"lm_head_ln_type", "standard_ln"},
            {"pooler_function", "first"},
            {"pooler_act", "tanh"},
            {"classifier_bias", true},
            {"num_labels", 3}};
  for (auto& [k, v] : extra.items()) j[k] = v;
  return models::ModelConfig::from_json(j);
}

TEST(DanetModel, GradientsMatchFiniteDifferencesGlobal) { check_model_gradients(small_danet(), 12, 3); }

TEST(DanetModel, GradientsMatchFiniteDifferencesLocalRopeSwiglu) {
  check_model_gradients(small_danet({{"local_attention", true},
                                     {"local_scheme", "l_sl_g"},
                                     {"num_hidden_layers", 3},
                                     {"window_size", 4},
                                     {"pos_emb_type", "relpe"},
                                     {"relpe_type", "rope"},
                                     {"relpe_scheme", "q,k"},
                                     {"swiglu_ffn", true},
                                     {"pre_attn_ln_type", "scaled_max_norm"},
                                     {"post_attn_ln_type", "prescaled_max_norm"},
                                     {"pooler_function", "mean"}}),
                        12, 4);
}

TEST(BertModel, GradientsMatchFiniteDifferences) {
  auto c = models::ModelConfig::from_json({{"model_type", "bert"},
                                           {"vocab_size", 29},
                                           {"hidden_size", 8},
                                           {"num_hidden_layers", 2},
                                           {"num_attention_heads", 2},
                                           {"intermediate_size", 16},
                                           {"max_position_embeddings", 12},
                                           {"hidden_dropout_prob", 0.0},
                                           {"attention_probs_dropout_prob", 0.0},
                                           {"num_labels", 3}});
  check_model_gradients(c, 10, 3);
}

TEST(DanetModel, PairMatchingGradientsMatchFiniteDifferencesAndDocumentsStayIndependent) {
  auto model = models::build_model(small_danet({{"pair_matching", true}, {"num_labels", 2}, {"pooler_act", "gelu"}}),
                                   DType::F64, Device::cpu(), 3);
  randomize(model->params(), 13);
  ASSERT_EQ(model->params().find("classifier.weight"), nullptr);
  models::Batch batch = make_batch(2, 10, 29, 3, 6);
  const models::Batch second = make_batch(2, 10, 29, 5, 8);
  batch.input_ids2 = second.input_ids;
  batch.attention_mask2 = second.attention_mask;
  batch.mlm_labels = Tensor();
  batch.class_labels = Tensor::from_vector<int64_t>({1, 0}, {2}, DType::I64);
  auto forward = [&] {
    nn::Context ctx;
    return Tensor::full({1}, model->forward(batch, ctx).loss, DType::F64);
  };
  auto backward = [&](const Tensor& w) {
    model->params().zero_grad();
    model->backward(w.item());
  };
  std::vector<dense::testing::GradVar> vars;
  for (auto& p : model->params().all())
    if (p.name.rfind("lm_head.", 0) != 0) vars.push_back({p.name, p.value, p.grad});  // no MLM loss here
  dense::testing::check_gradients(forward, backward, vars, 1e-6, 1e-6, 24);

  // The second document is encoded exactly as if it were alone in a batch.
  nn::Context ctx;
  const Tensor pooled = model->forward(batch, ctx).pooled;
  models::Batch alone;
  alone.input_ids = second.input_ids;
  alone.attention_mask = second.attention_mask;
  alone.input_ids2 = second.input_ids;
  alone.attention_mask2 = second.attention_mask;
  const Tensor pooled_alone = model->forward(alone, ctx).pooled;
  EXPECT_LT(dense::testing::relative_error(pooled.slice(0, 2, 4), pooled_alone.slice(0, 0, 2)), 1e-14);

  models::Batch missing = batch;
  missing.input_ids2 = Tensor();
  EXPECT_THROW(model->forward(missing, ctx), Error);
}

TEST(DanetModel, BertLargeParameterCountMatchesSpec) {
  // Spec §1.15: 9,437,184 per layer; 32 layers + word (30528 x 1024) + 512 positions + LM transform + bias.
  auto c = models::ModelConfig::from_json({{"vocab_size", 30522},
                                           {"hidden_size", 1024},
                                           {"num_hidden_layers", 32},
                                           {"intermediate_size", 4},
                                           {"max_position_embeddings", 512},
                                           {"lm_head_ln_type", "standard_ln"},
                                           {"pooler_no_dense", true},
                                           {"num_labels", 2}});
  const int64_t per_layer = 1024 * 1024 + 2 * 1024 * 4096;
  EXPECT_EQ(per_layer, 9437184);
  const int64_t expected = 32 * per_layer + 30528 * 1024 + 512 * 1024 + 1024 * 1024 + 1024 + 30528 + 2 * 1024;
  const int64_t count = models::count_parameters(c);
  EXPECT_EQ(count, expected);
  EXPECT_NEAR(double(count) / 1e6, 335.0, 1.0);  // "≈335M" (paper)
  auto swiglu = c;
  swiglu.swiglu_ffn = true;
  EXPECT_EQ(models::count_parameters(swiglu) - count, 32 * (9699328 - per_layer));
}

TEST(DanetModel, AppendedPaddingLeavesRealTokensUnchanged) {
  for (const json& extra : {json::object(),
                            json{{"local_attention", true},
                                 {"window_size", 4},
                                 {"num_hidden_layers", 3},
                                 {"pos_emb_type", "relpe"},
                                 {"relpe_type", "cosine"},
                                 {"max_position_embeddings", 16}},
                            json{{"attention_complexity", "quadratic"}, {"swiglu_ffn", true}}}) {
    SCOPED_TRACE(extra.dump());
    auto model = models::build_model(small_danet(extra), DType::F64, Device::cpu(), 3);
    randomize(model->params(), 2);
    const int64_t N = 8, P = 4;
    models::Batch a = make_batch(2, N, 29, 0, 9);
    models::Batch b;
    // The same sequences followed by P pad tokens (id 0, mask 0).
    auto ids = a.input_ids.to_vector<int64_t>();
    std::vector<int64_t> ids2, mask2;
    for (int64_t r = 0; r < 2; ++r) {
      for (int64_t i = 0; i < N; ++i) ids2.push_back(ids[size_t(r * N + i)]), mask2.push_back(1);
      for (int64_t i = 0; i < P; ++i) ids2.push_back(0), mask2.push_back(0);
    }
    b.input_ids = Tensor::from_vector(ids2, {2, N + P}, DType::I64);
    b.attention_mask = Tensor::from_vector(mask2, {2, N + P}, DType::I64);
    a.mlm_labels = a.class_labels = Tensor();
    nn::Context ctx;
    const Tensor sa = model->forward(a, ctx).sequence_output;
    const Tensor sb = model->forward(b, ctx).sequence_output.slice(1, 0, N);
    EXPECT_LT(dense::testing::relative_error(sb, sa), 1e-13);
  }
}

TEST(DanetModel, RecomputationGivesIdenticalGradients) {
  auto config =
      small_danet({{"hidden_dropout_prob", 0.1}, {"attention_probs_dropout_prob", 0.1}, {"embedding_dropout", 0.1}});
  auto run = [&](bool recompute) {
    auto model = models::build_model(config, DType::F32, Device::cpu(), 5);
    model->set_recompute(recompute);
    nn::Context ctx{true, Generator(77, 0)};
    const auto batch = make_batch(2, 12, 29, 2, 4);
    const double loss = model->forward(batch, ctx).loss;
    model->backward(1.0);
    return std::make_pair(loss, model->params().grads().to_vector<float>());
  };
  const auto plain = run(false), recomputed = run(true);
  EXPECT_EQ(plain.first, recomputed.first);
  EXPECT_EQ(plain.second, recomputed.second);  // bitwise: same kernels, same dropout draws
}

TEST(DanetModel, InitialisationFollowsSpec) {
  auto c = small_danet({{"hidden_size", 64},
                        {"num_hidden_layers", 4},
                        {"num_attention_heads", 1},
                        {"vocab_size", 1000},
                        {"initializer_range", 0.02}});
  auto model = models::build_model(c, DType::F64, Device::cpu(), 1);
  auto stats = [](const Tensor& t) {
    const auto v = t.to_vector<double>();
    double s = 0, s2 = 0, mx = 0;
    for (double x : v) s += x, s2 += x * x, mx = std::max(mx, std::abs(x));
    const double mean = s / double(v.size());
    return std::make_tuple(mean, std::sqrt(s2 / double(v.size()) - mean * mean), mx);
  };
  const auto [qm, qs, qmax] = stats(model->params().at("encoder.layer.0.attention.queries").value);
  EXPECT_NEAR(qs, 0.02 / std::sqrt(2.0 * 4 * 64), 0.1 * 0.02 / std::sqrt(2.0 * 4 * 64));
  const auto [fm, fs, fmax] = stats(model->params().at("encoder.layer.1.ffn.w1").value);
  EXPECT_NEAR(fs, 1.0 / std::sqrt(2.0 * 64 * 2), 0.05 / std::sqrt(2.0 * 64 * 2));
  const auto [wm, ws, wmax] = stats(model->params().at("embeddings.word_embeddings.weight").value);
  EXPECT_LE(wmax, 0.02);  // Uniform(±r0): the tied decoder's init
  EXPECT_NEAR(ws, 0.02 / std::sqrt(3.0), 0.001);
  EXPECT_EQ(model->params().at("lm_head.bias").value.to_vector<double>(), std::vector<double>(1000, 0.0));
  // Different layers draw different values (each parameter has its own Philox key).
  EXPECT_NE(model->params().at("encoder.layer.0.attention.queries").value.to_vector<double>(),
            model->params().at("encoder.layer.1.attention.queries").value.to_vector<double>());
}

TEST(ModelConfig, ErrorsNameTheFieldAndAllowedValues) {
  auto message = [](const json& j) {
    try {
      models::ModelConfig::from_json(j);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message({{"hidden_size", 30}, {"num_attention_heads", 4}}).find("num_attention_heads"), std::string::npos);
  EXPECT_NE(message({{"pre_attn_ln_type", "maxnorm"}}).find("pre_attn_ln_type: unknown norm 'maxnorm'; allowed:"),
            std::string::npos);
  EXPECT_NE(message({{"local_attention", true}, {"window_size", 48}, {"max_position_embeddings", 512}})
                .find("cannot tile max_position_embeddings 512"),
            std::string::npos);
  EXPECT_NE(message({{"hiden_size", 8}}).find("model.hiden_size: unknown key (did you mean 'hidden_size'?)"),
            std::string::npos);
  EXPECT_NE(message({{"hidden_size", "big"}}).find("model.hidden_size: expected an integer"), std::string::npos);
  EXPECT_NE(message({{"model_type", "gpt"}}).find("allowed: danet, bert"), std::string::npos);
  EXPECT_NE(message({{"local_attention", true}, {"local_scheme", "l_x_g"}, {"window_size", 128}})
                .find("unknown layer code 'x'"),
            std::string::npos);
  EXPECT_NE(message({{"attention_complexity", "cubic"}}).find("attention_complexity"), std::string::npos);
}

TEST(ModelConfig, FixedChoicesReadOnceAsEnumsAndWriteBackTheirNames) {
  // The defaults write the names the config files have always held (a checkpoint's config.json is unchanged).
  const json d = models::ModelConfig{}.to_json();
  const std::map<std::string, std::string> defaults = {{"model_type", "danet"},
                                                       {"attention_complexity", "auto"},
                                                       {"pre_attn_ln_type", "max_norm"},
                                                       {"post_attn_ln_type", "max_norm"},
                                                       {"embedding_ln_type", "hardtanh"},
                                                       {"final_ln_type", "none"},
                                                       {"pos_emb_type", "learned"},
                                                       {"relpe_type", "none"},
                                                       {"relpe_scheme", "qkv"},
                                                       {"pooler_function", "mean"},
                                                       {"pooler_act", "gelu"},
                                                       {"pooler_ln_type", "none"},
                                                       {"lm_head_act", "gelu"},
                                                       {"lm_head_ln_type", "uncentered_ln"},
                                                       {"hidden_act", "gelu"},
                                                       {"local_scheme", "l_sl_g"}};
  for (const auto& [key, name] : defaults) EXPECT_EQ(d.at(key), name) << key;

  const json j = {{"attention_complexity", "quadratic"},
                  {"pre_attn_ln_type", "scaled_max_norm"},
                  {"final_ln_type", nullptr},
                  {"lm_head_ln_type", "no_ln"},
                  {"pooler_act", "swish"},
                  {"pos_emb_type", "relpe"},
                  {"relpe_type", "rope"},
                  {"pooler_function", "masked_mean"},
                  {"embedding_ln_type", "leaky_relu_0.1"}};
  const models::ModelConfig c = models::ModelConfig::from_json(j);
  EXPECT_EQ(c.attention_complexity, nn::AttentionComplexity::Quadratic);
  EXPECT_EQ(c.pre_attn_ln_type, models::NormType::ScaledMaxNorm);
  EXPECT_EQ(c.final_ln_type, models::NormType::None);    // null: no norm
  EXPECT_EQ(c.lm_head_ln_type, models::NormType::None);  // an alias
  EXPECT_EQ(c.pooler_act, models::ActivationType::Silu);
  EXPECT_EQ(c.pos_emb_type, models::PositionEmbedding::RelPE);
  EXPECT_EQ(c.relpe_type, nn::RelPEType::Rope);
  EXPECT_EQ(c.pooler_function, nn::PoolFunction::MaskedMean);
  EXPECT_EQ(c.embedding_ln_type, models::NormType::LeakyRelu01);
  const json back = c.to_json();
  EXPECT_EQ(back.at("final_ln_type"), "none");
  EXPECT_EQ(back.at("lm_head_ln_type"), "none");
  EXPECT_EQ(back.at("pooler_act"), "silu");
  EXPECT_EQ(back.at("embedding_ln_type"), "leaky_relu_0.1");
  EXPECT_EQ(models::ModelConfig::from_json(back).to_json(), back);
  // The nn modules get the registry's spec for the name.
  EXPECT_EQ(models::norm_spec(models::NormType::ScaledMaxNorm).row, RowNorm::ScaledMaxNorm);
  EXPECT_EQ(models::activation_spec(models::ActivationType::LeakyRelu01).slope, 0.1);

  auto message = [](const json& bad) {
    try {
      models::ModelConfig::from_json(bad);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message({{"pooler_act", "fancy"}})
                .find("model.pooler_act: unknown activation 'fancy'; allowed: gelu, legacy_gelu, gelu_tanh, relu, "
                      "tanh, silu, sigmoid, leaky_relu, leaky_relu_0.1, hardtanh, identity"),
            std::string::npos);
  EXPECT_NE(message({{"pooler_function", "avg"}})
                .find("model.pooler_function: unknown pooler function 'avg'; "
                      "allowed: first, mean, max, masked_mean"),
            std::string::npos);
  EXPECT_NE(message({{"pos_emb_type", "rotary"}}).find("allowed: learned, sinusoidal, relpe"), std::string::npos);
  EXPECT_NE(message({{"relpe_type", "learned"}})
                .find("model.relpe_type: 'learned' (the multiplicative learned "
                      "RelPE) is not supported"),
            std::string::npos);
  // local_scheme: a list of layer kinds, written back as its codes.
  const models::ModelConfig sw = models::ModelConfig::from_json({{"local_scheme", "sw_l"}});
  EXPECT_EQ(sw.local_scheme, (std::vector<nn::LayerKind>{nn::LayerKind::SlidingWindow, nn::LayerKind::Local}));
  EXPECT_EQ(sw.to_json().at("local_scheme"), "sw_l");
  EXPECT_NE(message({{"local_scheme", "l__g"}})
                .find("model.local_scheme 'l__g': unknown layer code ''; allowed: g, "
                      "l, sl, sw (joined by _)"),
            std::string::npos);
  // Read whatever the model type: a BERT config with a DANet key of an unknown name fails too.
  EXPECT_NE(message({{"model_type", "bert"}, {"pooler_ln_type", "fancy"}}).find("model.pooler_ln_type: unknown norm"),
            std::string::npos);
}

TEST(ModelConfig, ShippedModelConfigsBuild) {
  // Every configs/models/*.json parses and describes the parameter count the spec gives (§1.15).
  const std::string dir = std::string(DENSE_TEST_DATA_DIR) + "/../../configs/models";
  std::map<std::string, std::pair<double, double>> expected_millions = {
      {"danet_bert_large_seq512.json", {335.0, 1.0}},
      {"danet_bert_large_glue.json", {343.84, 0.01}},  // §1.15's 342M + pooler dense and gains
      {"bert_large_baseline.json", {335.0, 6.0}},
      {"lra_listops.json", {0.0, 1e9}},
      {"lra_retrieval.json", {0.0, 1e9}},
      // tiny.yaml's count (heads do not change it): 4 (W_Q + FFN 8 d^2) + tied words + positions + MLM transform,
      // gain and bias + pooler + classifier with bias.
      {"small_danet.json",
       {(4 * 9 * 128 * 128 + 30528 * 128 + 128 * 128 + 128 * 128 + 128 + 30528 + 128 * 128 + 2 * 128 + 2) / 1e6, 1e-7}},
      // 4 (QKVO with biases + two LayerNorms + FFN 128 -> 512 -> 128 with biases) + words + positions + embedding
      // and final LayerNorms + MLM transform with bias, LayerNorm and output bias + pooler with bias + classifier.
      {"small_bert.json",
       {(4 * (4 * (128 * 128 + 128) + 4 * 128 + 2 * 128 * 512 + 512 + 128) + 30528 * 128 + 128 * 128 + 4 * 128 +
         128 * 128 + 128 + 2 * 128 + 30528 + 128 * 128 + 128 + 2 * 128 + 2) /
            1e6,
        1e-7}},
      // L (W_Q + FFN 2 r d^2) + V d (no position table: RelPE) + pooler d^2 (unless pooler_no_dense) +
      // classifier d C (no bias) + the MLM transform d^2 + d and output bias V, exactly.
      {"lra_text.json", {(9 * 5 * 512 * 512 + 256 * 512 + 512 * 512 + 512 * 2 + 512 * 512 + 512 + 256) / 1e6, 1e-7}},
      {"lra_image.json", {(9 * 5 * 256 * 256 + 264 * 256 + 256 * 256 + 256 * 10 + 256 * 256 + 256 + 264) / 1e6, 1e-7}},
      {"lra_pathfinder.json", {(6 * 3 * 128 * 128 + 264 * 128 + 128 * 2 + 128 * 128 + 128 + 264) / 1e6, 1e-7}},
      {"lra_pathx.json", {(6 * 3 * 128 * 128 + 264 * 128 + 128 * 128 + 128 * 2 + 128 * 128 + 128 + 264) / 1e6, 1e-7}}};
  int seen = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    SCOPED_TRACE(name);
    std::ifstream in(entry.path());
    const auto config = models::ModelConfig::from_json(nlohmann::json::parse(in), name);
    const double millions = double(models::count_parameters(config)) / 1e6;
    ASSERT_TRUE(expected_millions.count(name)) << "add the new config to this test";
    EXPECT_NEAR(millions, expected_millions[name].first, expected_millions[name].second);
    ++seen;
  }
  EXPECT_EQ(seen, int(expected_millions.size()));
}

TEST(ModelConfig, JsonRoundTrip) {
  const auto c = small_danet({{"swiglu_ffn", true}, {"relpe_type", "rope"}, {"pos_emb_type", "relpe"}});
  const auto back = models::ModelConfig::from_json(c.to_json());
  EXPECT_EQ(back.to_json(), c.to_json());
}

}  // namespace
