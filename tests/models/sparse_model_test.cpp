// Sparse attention inside the models (`attention: {type: sparse, ...}`): a `dense` pattern reproduces the
// model's own attention exactly, finite differences of whole 2-layer models with real patterns, and the
// config's errors and round trip.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>

#include "gradcheck.h"
#include "model_fixtures.h"
#include "models/model.h"
#include "test_files.h"

using namespace dense;
using dense::testing::check_model_gradients;
using dense::testing::make_batch;
using dense::testing::randomize;
using nlohmann::json;

namespace {

json small(const std::string& type, json extra = json::object()) {
  json j = {{"model_type", type},
            {"vocab_size", 29},
            {"hidden_size", 8},
            {"num_hidden_layers", 2},
            {"num_attention_heads", 2},
            {"intermediate_size", type == "bert" ? 16 : 2},
            {"max_position_embeddings", 16},
            {"num_labels", 3}};
  if (type == "bert") {
    j["hidden_dropout_prob"] = 0.0;
    j["attention_probs_dropout_prob"] = 0.0;
  } else {
    j["attention_complexity"] = "quadratic";
    j["final_ln_type"] = "max_norm";
    j["lm_head_ln_type"] = "standard_ln";
  }
  for (auto& [k, v] : extra.items()) j[k] = v;
  return j;
}

struct ModelRun {
  double loss;
  std::vector<double> grads;
};
ModelRun run(const json& config, const models::Batch& batch) {
  auto model = models::build_model(models::ModelConfig::from_json(config), DType::F64, Device::cpu(), 3);
  randomize(model->params(), 11);
  nn::Context ctx;
  const double loss = model->forward(batch, ctx).loss;
  model->params().zero_grad();
  model->backward(1.0);
  ModelRun r{loss, {}};
  for (auto& p : model->params().all()) {
    const auto g = p.grad.to_vector<double>();
    r.grads.insert(r.grads.end(), g.begin(), g.end());
  }
  return r;
}

void expect_close(const ModelRun& a, const ModelRun& b, double tol) {
  EXPECT_NEAR(a.loss, b.loss, tol * std::abs(b.loss));
  ASSERT_EQ(a.grads.size(), b.grads.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < a.grads.size(); ++i) {
    num = std::max(num, std::abs(a.grads[i] - b.grads[i]));
    den = std::max(den, std::abs(b.grads[i]));
  }
  EXPECT_LT(num / den, tol);
}

TEST(SparseModel, DensePatternReproducesTheModelsOwnAttention) {
  const models::Batch batch = make_batch(2, 11, 29, 3, 5);
  for (const std::string type : {"bert", "danet"}) {
    SCOPED_TRACE(type);
    const ModelRun own = run(small(type), batch);
    const ModelRun graph = run(small(type, {{"attention", {{"type", "sparse"}, {"pattern", "dense"}}}}), batch);
    expect_close(graph, own, 1e-12);
  }
}

// A sliding window wide enough to see every key is the dense model too (through the implicit band).
TEST(SparseModel, WideSlidingWindowIsDenseAttention) {
  const models::Batch batch = make_batch(2, 9, 29, 2, 5);
  for (const std::string type : {"bert", "danet"}) {
    SCOPED_TRACE(type);
    const ModelRun own = run(small(type), batch);
    const ModelRun band =
        run(small(type, {{"attention", {{"type", "sparse"}, {"pattern", "sliding_window"}, {"window", 8}}}}), batch);
    expect_close(band, own, 1e-12);
  }
}

TEST(SparseModel, GradientsMatchFiniteDifferences) {
  const json patterns[] = {
      {{"type", "sparse"}, {"pattern", "sliding_window"}, {"window", 2}},
      {{"type", "sparse"}, {"pattern", "fixed"}, {"stride", 4}, {"summary", 1}, {"heads_mode", "multihead"}},
      {{"type", "sparse"}, {"pattern", "strided"}, {"stride", 3}, {"heads_mode", "interleaved"}},
      {{"type", "sparse"}, {"pattern", "bigbird"}, {"block", 2}, {"seed", 7}},
      {{"type", "sparse"}, {"pattern", "longformer"}, {"window", 1}, {"global_tokens", json::array({0, 5})}},
  };
  for (const std::string type : {"bert", "danet"})
    for (const json& p : patterns) {
      SCOPED_TRACE(type + " " + p.dump());
      check_model_gradients(models::ModelConfig::from_json(small(type, {{"attention", p}})), 13, 3);
    }
}

TEST(SparseModel, ConfigRoundTripsAndErrorsNameTheKey) {
  const auto c = models::ModelConfig::from_json(
      small("bert", {{"attention", {{"type", "sparse"}, {"pattern", "fixed"}, {"stride", 4}, {"summary", 2}}}}));
  ASSERT_TRUE(c.sparse_pattern().has_value());
  EXPECT_EQ(c.sparse_pattern()->kind, nn::PatternKind::Fixed);
  const auto back = models::ModelConfig::from_json(c.to_json());
  EXPECT_EQ(back.attention_pattern, c.attention_pattern);
  EXPECT_TRUE(
      models::ModelConfig::from_json(small("bert", {{"attention", {{"type", "dense"}}}})).attention_pattern.empty());

  auto message = [](const json& j) { return dense::testing::error_of([&] { models::ModelConfig::from_json(j); }); };
  EXPECT_NE(message(small("bert", {{"attention", {{"type", "sprase"}}}})).find("unknown attention type 'sprase'"),
            std::string::npos);
  EXPECT_NE(message(small("bert", {{"attention", {{"type", "sparse"}}}})).find("model.attention.pattern: missing"),
            std::string::npos);
  EXPECT_NE(message(small("danet", {{"attention", {{"type", "sparse"}, {"pattern", "fixed"}, {"stride", 0}}}}))
                .find("stride"),
            std::string::npos);
  EXPECT_NE(message(small("bert", {{"attention_probs_dropout_prob", 0.1},
                                   {"attention", {{"type", "sparse"}, {"pattern", "dense"}}}}))
                .find("attention_probs_dropout_prob: 0"),
            std::string::npos);
  EXPECT_NE(message(small("danet", {{"causal", true}, {"attention", {{"type", "sparse"}, {"pattern", "dense"}}}}))
                .find("the model is causal but the pattern is bidirectional"),
            std::string::npos);
  EXPECT_NE(message(small("danet", {{"attention", "sparse"}})).find("model.attention: expected a mapping"),
            std::string::npos);
}

}  // namespace
