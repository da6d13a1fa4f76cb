// Optimizers, parameter groups, LR schedules and gradient clipping (src/train/optimizer.h, schedule.h).
// AdamW and LAMB trajectories are compared with tests/reference/optim_reference.py (torch.optim.AdamW and a
// plain-torch LAMB), which the suite runs itself into a temp folder: f64 within 1e-12 per parameter, f32
// within 1e-6 of torch's own f32 AdamW and 1e-5 of the f64 reference.
#include <gtest/gtest.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numbers>

#include "backend/cpu/backend.h"
#include "backend/ops.h"
#include "core/safetensors.h"
#include "gradcheck.h"
#include "models/model.h"
#include "test_files.h"
#include "train/optimizer.h"
#include "train/schedule.h"

using namespace dense;
using namespace dense::train;
using dense::testing::contains;
using dense::testing::error_of;
using dense::testing::relative_error;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const char* kPython = "/usr/bin/python3";

OptimizerConfig adamw_config(double wd = 0.01) {
  OptimizerConfig c;
  c.type = "adamw";
  c.learning_rate = 1e-3;
  c.betas = {0.9, 0.99};
  c.eps = 1e-8;
  c.weight_decay = wd;
  return c;
}

Tensor random_arena(int64_t n, uint64_t seed, double std = 1.0, DType dtype = DType::F32) {
  Tensor t = Tensor::empty({n}, dtype);
  ops::fill_normal(t, 0.0, std, seed, 0);
  return t;
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.numel() == b.numel() &&
         std::memcmp(a.contiguous().raw_data(), b.contiguous().raw_data(), a.nbytes()) == 0;
}

// ---- parity with the PyTorch reference ------------------------------------------------------------------

class OptimReference : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!fs::exists(kPython) ||
        std::system((std::string(kPython) + " -c 'import torch' > /dev/null 2>&1").c_str()) != 0) {
      skip_reason_ = std::string(kPython) + " has no torch";
      return;
    }
    dir_ = (fs::path(::testing::TempDir()) / ("dense_optim_goldens_" + std::to_string(::getpid()))).string();
    const std::string script = std::string(DENSE_TEST_DATA_DIR) + "/../reference/optim_reference.py";
    const std::string log = dir_ + ".log";
    const int rc = std::system((std::string(kPython) + " " + script + " " + dir_ + " > " + log + " 2>&1").c_str());
    if (rc != 0) failure_ = "optim_reference.py failed:\n" + dense::testing::read_bytes(log);
    std::remove(log.c_str());
  }
  static void TearDownTestSuite() {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  void SetUp() override {
    if (!skip_reason_.empty()) GTEST_SKIP() << skip_reason_;
    ASSERT_TRUE(failure_.empty()) << failure_;
  }

  static std::vector<std::string> cases() {
    std::vector<std::string> names;
    std::ifstream in(dir_ + "/optim_cases.txt");
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) names.push_back(line);
    return names;
  }

  static std::string dir_, skip_reason_, failure_;
};
std::string OptimReference::dir_, OptimReference::skip_reason_, OptimReference::failure_;

struct GoldenCase {
  SafeTensors file;
  json meta;
  OptimizerConfig config;
  std::vector<ParamRange> ranges;
  std::vector<double> lrs;
};

GoldenCase load_golden(const std::string& path) {
  GoldenCase c;
  c.file = read_safetensors(path);
  c.meta = json::parse(c.file.metadata.at("case"));
  c.config.type = c.meta.at("type");
  c.config.betas = {c.meta.at("betas")[0], c.meta.at("betas")[1]};
  c.config.eps = c.meta.at("eps");
  c.config.weight_decay = c.meta.at("weight_decay");
  for (const auto& r : c.meta.at("ranges")) c.ranges.push_back({r[0], r[1], r[2], r[3]});
  c.lrs = c.meta.at("lrs").get<std::vector<double>>();
  return c;
}

// Norm-wise relative error per parameter (a whole-arena norm would hide the 1e-15-gradient parameter), and
// the gaps between parameters exactly as they started.
void expect_close_per_range(const GoldenCase& c, const Tensor& got, const Tensor& want, double tol,
                            const std::string& what) {
  for (const auto& r : c.ranges) {
    const Tensor a = got.slice(0, r.offset, r.offset + r.numel);
    const Tensor b = want.slice(0, r.offset, r.offset + r.numel);
    EXPECT_LT(relative_error(a, b), tol) << what << " of " << r.name;
  }
}

void expect_gaps_untouched(const GoldenCase& c, const Tensor& got, const Tensor& init) {
  const auto g = got.to_vector<double>(), i = init.to_vector<double>();
  std::vector<bool> inside(g.size(), false);
  for (const auto& r : c.ranges)
    for (int64_t k = r.offset; k < r.offset + r.numel; ++k) inside[size_t(k)] = true;
  for (size_t k = 0; k < g.size(); ++k)
    if (!inside[k]) {
      ASSERT_EQ(g[k], double(float(i[k]))) << "gap element " << k << " was written";
    }
}

TEST_F(OptimReference, F64TrajectoriesMatchTorch) {
  const auto names = cases();
  ASSERT_EQ(names.size(), 5u);
  for (const auto& name : names) {
    SCOPED_TRACE(name);
    const GoldenCase c = load_golden(dir_ + "/" + name + ".safetensors");
    const int64_t numel = c.meta.at("numel");
    auto opt = Optimizer::create(c.config, c.ranges, numel);
    Tensor values = c.file.at("init.values").clone();
    for (size_t k = 0; k < c.lrs.size(); ++k) {
      opt->step(values, c.file.at(fmt::format("grad.{}", k)), c.lrs[k]);
      EXPECT_EQ(opt->steps(), int64_t(k + 1));
      expect_close_per_range(c, values, c.file.at(fmt::format("f64.values.{}", k)), 1e-12, fmt::format("values {}", k));
      const auto st = opt->state();
      ASSERT_EQ(st.size(), 2u);
      EXPECT_EQ(st[0].first, "exp_avg");
      EXPECT_EQ(st[1].first, "exp_avg_sq");
      expect_close_per_range(c, st[0].second, c.file.at(fmt::format("f64.exp_avg.{}", k)), 1e-13,
                             fmt::format("exp_avg {}", k));
      expect_close_per_range(c, st[1].second, c.file.at(fmt::format("f64.exp_avg_sq.{}", k)), 1e-13,
                             fmt::format("exp_avg_sq {}", k));
    }
    // The gaps keep their junk exactly (the init values are f32-representable).
    expect_gaps_untouched(c, values, c.file.at("init.values"));
  }
}

TEST_F(OptimReference, F32TrajectoriesMatchTorch) {
  for (const auto& name : cases()) {
    SCOPED_TRACE(name);
    const GoldenCase c = load_golden(dir_ + "/" + name + ".safetensors");
    auto opt = Optimizer::create(c.config, c.ranges, c.meta.at("numel"));
    Tensor values = c.file.at("init.values").to(DType::F32);
    for (size_t k = 0; k < c.lrs.size(); ++k) {
      opt->step(values, c.file.at(fmt::format("grad.{}", k)).to(DType::F32), c.lrs[k]);
      EXPECT_EQ(opt->state()[0].second.dtype(), DType::F32);
      expect_close_per_range(c, values, c.file.at(fmt::format("f64.values.{}", k)), 1e-5,
                             fmt::format("values {} against f64", k));
      if (const Tensor* t32 = c.file.find(fmt::format("f32.values.{}", k)))
        expect_close_per_range(c, values, *t32, 1e-6, fmt::format("values {} against torch f32", k));
    }
    expect_gaps_untouched(c, values, c.file.at("init.values"));
  }
}

// Without gradients the Adam step is exactly zero, so only the decoupled decay moves the weights: exactly
// p * (1 - lr*wd) in the decay group and nothing in the other. Also shows set_weight_decay takes effect.
TEST(OptimGroups, ZeroGradientsApplyOnlyTheDecoupledDecay) {
  const std::vector<ParamRange> ranges = {{"w", 0, 40, true}, {"b", 48, 8, false}};
  for (const std::string type : {"adamw", "lamb"}) {
    SCOPED_TRACE(type);
    OptimizerConfig cfg = adamw_config(0.1);
    cfg.type = type;
    auto opt = Optimizer::create(cfg, ranges, 64);
    Tensor values = random_arena(64, 5, 1.0, DType::F64);
    const auto before = values.to_vector<double>();
    opt->step(values, Tensor::zeros({64}, DType::F64), 0.01);
    auto after = values.to_vector<double>();
    for (int64_t i = 48; i < 56; ++i) EXPECT_EQ(after[size_t(i)], before[size_t(i)]);
    if (type == "adamw") {
      for (int64_t i = 0; i < 40; ++i) EXPECT_EQ(after[size_t(i)], before[size_t(i)] * (1.0 - 0.01 * 0.1));
    } else {
      // LAMB: u = wd*p, ratio ||p||/||wd p|| = 1/wd, so p -= lr * p: the decay is normalised away.
      for (int64_t i = 0; i < 40; ++i) EXPECT_NEAR(after[size_t(i)], before[size_t(i)] * (1.0 - 0.01), 1e-15);
    }
    opt->set_weight_decay(0.0);
    EXPECT_EQ(opt->weight_decay(), 0.0);
    const auto mid = values.to_vector<double>();
    opt->step(values, Tensor::zeros({64}, DType::F64), 0.01);
    EXPECT_EQ(values.to_vector<double>(), mid);
  }
}

// docs/model.md §4.1: biases and norm gains never decay; embeddings and pooler per the flags. Checked against the
// reference's own substring rule translated to our names ("bias", "LayerNorm.weight" -> "norm.weight").
void check_groups(models::Model& model, bool no_decay_embeddings, bool no_decay_pooler) {
  OptimizerConfig cfg = adamw_config();
  cfg.no_decay_embeddings = no_decay_embeddings;
  cfg.no_decay_pooler = no_decay_pooler;
  const auto& params = model.params();
  const auto ranges = parameter_groups(params, cfg);
  ASSERT_EQ(ranges.size(), params.all().size());
  int decayed = 0, not_decayed = 0;
  for (size_t i = 0; i < ranges.size(); ++i) {
    const nn::Parameter& p = params.all()[i];
    const ParamRange& r = ranges[i];
    EXPECT_EQ(r.name, p.name);
    EXPECT_EQ(r.offset, p.arena_offset);
    EXPECT_EQ(r.numel, shape_numel(p.shape));
    const bool norm_gain = p.name.size() >= 11 && p.name.compare(p.name.size() - 11, 11, "norm.weight") == 0;
    const bool expect_no_decay = contains(p.name, "bias") || norm_gain ||
                                 (no_decay_embeddings && p.name.rfind("embeddings.", 0) == 0) ||
                                 (no_decay_pooler && p.name.rfind("pooler.", 0) == 0);
    EXPECT_EQ(r.decay, !expect_no_decay) << p.name;
    (r.decay ? decayed : not_decayed)++;
  }
  EXPECT_GT(decayed, 0);
  EXPECT_GT(not_decayed, 0);
  // The groups drive a real step over the model's arena (alignment padding included).
  // The arena size, padding included: ParameterSet::numel() counts parameters only.
  Tensor& values = model.params().values();
  auto opt = Optimizer::create(cfg, ranges, values.numel());
  Tensor grads = random_arena(values.numel(), 3, 1.0, values.dtype());
  opt->step(values, grads, 1e-3);
}

TEST(OptimGroups, DanetBiasesGainsEmbeddingsPooler) {
  const auto config = models::ModelConfig::from_json({{"model_type", "danet"},
                                                      {"vocab_size", 29},
                                                      {"hidden_size", 8},
                                                      {"num_hidden_layers", 2},
                                                      {"num_attention_heads", 2},
                                                      {"intermediate_size", 2},
                                                      {"max_position_embeddings", 12},
                                                      {"pos_emb_type", "learned"},
                                                      {"token_type_embeddings", true},
                                                      {"embedding_ln_type", "scaled_max_norm"},
                                                      {"pre_attn_ln_type", "scaled_max_norm"},
                                                      {"post_attn_ln_type", "prescaled_max_norm"},
                                                      {"final_ln_type", "uncentered_ln"},
                                                      {"lm_head_ln_type", "standard_ln"},
                                                      {"pooler_ln_type", "uncentered_ln"},
                                                      {"classifier_bias", true},
                                                      {"num_labels", 3}});
  auto model = models::build_model(config, DType::F32, Device::cpu(), 1);
  const auto& ps = model->params();
  // The config has each kind the rule must sort.
  for (const char* name :
       {"embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
        "embeddings.token_type_embeddings.weight", "embeddings.norm.weight", "encoder.layer.0.pre_norm.weight",
        "lm_head.bias", "pooler.dense.weight", "pooler.norm.weight", "classifier.weight", "classifier.bias"})
    ASSERT_NE(ps.find(name), nullptr) << name;
  for (bool emb : {false, true})
    for (bool pool : {false, true}) {
      SCOPED_TRACE(fmt::format("no_decay_embeddings {} no_decay_pooler {}", emb, pool));
      check_groups(*model, emb, pool);
    }
  OptimizerConfig cfg = adamw_config();
  const auto plain = parameter_groups(ps, cfg);
  auto decay_of = [&](const std::vector<ParamRange>& rs, const std::string& name) {
    for (const auto& r : rs)
      if (r.name == name) return r.decay;
    ADD_FAILURE() << name << " not in the groups";
    return false;
  };
  EXPECT_TRUE(decay_of(plain, "embeddings.word_embeddings.weight"));
  EXPECT_TRUE(decay_of(plain, "pooler.dense.weight"));
  EXPECT_FALSE(decay_of(plain, "pooler.norm.weight"));
  EXPECT_TRUE(decay_of(plain, "encoder.layer.1.attention.queries"));
  cfg.no_decay_embeddings = cfg.no_decay_pooler = true;
  const auto flagged = parameter_groups(ps, cfg);
  EXPECT_FALSE(decay_of(flagged, "embeddings.word_embeddings.weight"));
  EXPECT_FALSE(decay_of(flagged, "pooler.dense.weight"));
  EXPECT_TRUE(decay_of(flagged, "classifier.weight"));
  EXPECT_TRUE(decay_of(flagged, "lm_head.transform.dense.weight"));
}

TEST(OptimGroups, BertLayerNormsAndBiases) {
  auto config = models::ModelConfig::from_json({{"model_type", "bert"},
                                                {"vocab_size", 29},
                                                {"hidden_size", 8},
                                                {"num_hidden_layers", 2},
                                                {"num_attention_heads", 2},
                                                {"intermediate_size", 16},
                                                {"max_position_embeddings", 12},
                                                {"num_labels", 3}});
  auto model = models::build_model(config, DType::F32, Device::cpu(), 1);
  ASSERT_NE(model->params().find("encoder.layer.0.attention_norm.bias"), nullptr);
  check_groups(*model, false, false);
  check_groups(*model, true, true);
}

// ---- errors --------------------------------------------------------------------------------------------

TEST(OptimErrors, ConfigErrorsNameTheKey) {
  auto msg = [](auto edit) {
    OptimizerConfig c = adamw_config();
    edit(c);
    return error_of([&] { Optimizer::create(c, {{"w", 0, 4, true}}, 4); });
  };
  EXPECT_TRUE(contains(msg([](OptimizerConfig& c) { c.type = "sgd"; }),
                       "training.optimizer.type: 'sgd' is not one of adamw, lamb"));
  EXPECT_TRUE(contains(msg([](OptimizerConfig& c) { c.betas = {0.9, 1.0}; }), "training.optimizer.betas"));
  EXPECT_TRUE(contains(msg([](OptimizerConfig& c) { c.betas = {-0.1, 0.9}; }), "training.optimizer.betas"));
  EXPECT_TRUE(contains(msg([](OptimizerConfig& c) { c.eps = -1e-8; }), "training.optimizer.eps"));
  EXPECT_TRUE(contains(msg([](OptimizerConfig& c) { c.eps = std::nan(""); }), "training.optimizer.eps"));
  EXPECT_TRUE(contains(msg([](OptimizerConfig& c) { c.learning_rate = -1; }), "training.optimizer.learning_rate"));
  EXPECT_TRUE(contains(msg([](OptimizerConfig& c) { c.weight_decay = -0.1; }), "training.optimizer.weight_decay"));
  EXPECT_EQ(msg([](OptimizerConfig& c) {
              c.eps = 1e-16;
              c.betas = {0.0, 0.9};
            }),
            "");
  EXPECT_EQ(msg([](OptimizerConfig& c) { c.type = "lamb"; }), "");

  auto opt = Optimizer::create(adamw_config(), {{"w", 0, 4, true}}, 4);
  EXPECT_TRUE(contains(error_of([&] { opt->set_betas({1.0, 0.9}); }), "training.optimizer.betas"));
  EXPECT_TRUE(contains(error_of([&] { opt->set_weight_decay(-1); }), "training.optimizer.weight_decay"));
  opt->set_betas({0.8, 0.95});
  EXPECT_EQ(opt->betas()[1], 0.95);
}

TEST(OptimErrors, RangesAndStepArguments) {
  const OptimizerConfig c = adamw_config();
  EXPECT_TRUE(contains(error_of([&] {
                         Optimizer::create(c, {{"w", 0, 4, true}, {"b", 6, 4, false}}, 8);
                       }),
                       "parameter 'b' [6, 10) lies outside the arena of 8 elements"));
  EXPECT_TRUE(contains(error_of([&] {
                         Optimizer::create(c, {{"w", 0, 4, true}, {"b", 3, 2, false}}, 8);
                       }),
                       "parameters 'w' and 'b' overlap"));
  auto opt = Optimizer::create(c, {{"w", 0, 4, true}}, 8);
  Tensor v = Tensor::zeros({8}, DType::F32);
  EXPECT_TRUE(contains(error_of([&] { opt->step(v, Tensor::zeros({7}, DType::F32), 1e-3); }), "7 elements"));
  EXPECT_TRUE(contains(error_of([&] { opt->step(v, Tensor::zeros({8}, DType::F64), 1e-3); }),
                       "values are f32 but grads are f64"));
  Tensor h = Tensor::zeros({8}, DType::BF16);
  EXPECT_TRUE(contains(error_of([&] { opt->step(h, h, 1e-3); }), "must be f32 or f64"));
  EXPECT_TRUE(contains(error_of([&] { opt->step(v, Tensor::zeros({8}, DType::F32), -1.0); }), "learning rate"));
  Tensor strided = Tensor::zeros({16}, DType::F32).view({8, 2}).select(1, 0);
  EXPECT_TRUE(contains(error_of([&] { opt->step(strided, Tensor::zeros({8}, DType::F32), 1e-3); }), "contiguous"));
  EXPECT_EQ(opt->steps(), 0);
}

// ---- state ---------------------------------------------------------------------------------------------

std::vector<std::pair<std::string, Tensor>> clone_state(const Optimizer& opt) {
  std::vector<std::pair<std::string, Tensor>> s;
  for (const auto& [n, t] : opt.state()) s.emplace_back(n, t.clone());
  return s;
}

TEST(OptimState, RoundTripThroughSafetensorsGivesIdenticalNextSteps) {
  const std::vector<ParamRange> ranges = {{"a", 0, 5000, true}, {"b", 5008, 17, false}, {"c", 5040, 300, true}};
  const int64_t n = 5344;
  for (const std::string type : {"adamw", "lamb"}) {
    SCOPED_TRACE(type);
    OptimizerConfig cfg = adamw_config(0.05);
    cfg.type = type;
    cfg.eps = 1e-16;
    auto a = Optimizer::create(cfg, ranges, n);
    Tensor values = random_arena(n, 11);
    for (int k = 0; k < 3; ++k) a->step(values, random_arena(n, 100 + uint64_t(k), 0.1), 1e-3 * (k + 1));
    const std::string path = dense::testing::temp_dir() + "/optim.safetensors";
    write_safetensors(path, a->state(), {{"steps", std::to_string(a->steps())}});
    const SafeTensors saved = read_safetensors(path);

    auto b = Optimizer::create(cfg, ranges, n);
    b->load_state(saved.tensors, std::stoll(saved.metadata.at("steps")));
    EXPECT_EQ(b->steps(), 3);
    Tensor values_b = values.clone();
    for (int k = 3; k < 5; ++k) {
      const Tensor g = random_arena(n, 100 + uint64_t(k), 0.1);
      a->step(values, g, 2e-3);
      b->step(values_b, g, 2e-3);
    }
    EXPECT_TRUE(bitwise_equal(values, values_b));
    for (size_t i = 0; i < 2; ++i) EXPECT_TRUE(bitwise_equal(a->state()[i].second, b->state()[i].second));
  }
}

TEST(OptimState, LoadErrorsNameTheTensorAndLeaveTheStateAlone) {
  auto opt = Optimizer::create(adamw_config(), {{"w", 0, 6, true}}, 8);
  Tensor v = random_arena(8, 1);
  opt->step(v, random_arena(8, 2), 1e-3);
  const auto good = clone_state(*opt);
  auto with = [&](const std::string& name, Tensor t) {
    auto s = good;
    for (auto& [n, x] : s)
      if (n == name) x = t;
    return s;
  };
  auto load = [&](const std::vector<std::pair<std::string, Tensor>>& s) {
    return error_of([&] { opt->load_state(s, 5); });
  };
  EXPECT_TRUE(contains(load({good[0]}), "tensor 'exp_avg_sq' is missing"));
  EXPECT_TRUE(
      contains(load(with("exp_avg", Tensor::zeros({7}, DType::F32))), "tensor 'exp_avg' has shape [7], expected [8]"));
  EXPECT_TRUE(contains(load(with("exp_avg_sq", Tensor::zeros({8}, DType::I64))), "tensor 'exp_avg_sq' is i64"));
  auto extra = good;
  extra.emplace_back("momentum", Tensor::zeros({8}, DType::F32));
  EXPECT_TRUE(contains(load(extra), "unexpected tensor 'momentum'"));
  auto twice = good;
  twice.push_back(good[0]);
  EXPECT_TRUE(contains(load(twice), "'exp_avg' given twice"));
  EXPECT_TRUE(contains(error_of([&] { opt->load_state(good, -1); }), "negative"));
  // A state that failed to load changed nothing.
  EXPECT_EQ(opt->steps(), 1);
  for (size_t i = 0; i < 2; ++i) EXPECT_TRUE(bitwise_equal(opt->state()[i].second, good[i].second));
  // f64 state loads into f32 moments.
  std::vector<std::pair<std::string, Tensor>> s64;
  for (const auto& [n, t] : good) s64.emplace_back(n, t.to(DType::F64));
  opt->load_state(s64, 4);
  EXPECT_EQ(opt->steps(), 4);
  EXPECT_TRUE(bitwise_equal(opt->state()[0].second, good[0].second));
}

// ---- gradient norm and clipping --------------------------------------------------------------------------

TEST(OptimClip, GlobalNormAndClipping) {
  for (DType dt : {DType::F64, DType::F32, DType::BF16, DType::F16}) {
    SCOPED_TRACE(std::string(dtype_name(dt)));
    Tensor g = Tensor::from_vector(std::vector<double>{3, 0, -4, 0}, {4}, dt);
    EXPECT_EQ(global_grad_norm(g), 5.0);
    EXPECT_EQ(clip_grad_norm(g, 0.0), 5.0);  // no clipping configured
    EXPECT_EQ(g.to_vector<double>(), (std::vector<double>{3, 0, -4, 0}));
    EXPECT_EQ(clip_grad_norm(g, 10.0), 5.0);  // below the limit
    EXPECT_EQ(g.to_vector<double>(), (std::vector<double>{3, 0, -4, 0}));
    EXPECT_EQ(clip_grad_norm(g, 1.0), 5.0);
    const double tol = dt == DType::F64 ? 1e-12 : dt == DType::F32 ? 1e-6 : 1e-2;
    // torch's coefficient max_norm / (norm + 1e-6) lands just below the limit.
    const double coef = 1.0 / (5.0 + 1e-6);
    EXPECT_NEAR(global_grad_norm(g), 5.0 * coef, tol);
    EXPECT_NEAR(g.to_vector<double>()[0], 3.0 * coef, tol);
  }
  // Non-finite norms leave the gradients alone (the trainer skips the step).
  Tensor bad = Tensor::from_vector(std::vector<float>{1, INFINITY}, {2}, DType::F32);
  EXPECT_TRUE(std::isinf(clip_grad_norm(bad, 1.0)));
  EXPECT_EQ(bad.to_vector<float>()[0], 1.0f);
  EXPECT_TRUE(contains(error_of([] { global_grad_norm(Tensor::zeros({3}, DType::I32)); }), "floating"));
}

TEST(OptimClip, NormIsAccurateForLargeArenas) {
  const int64_t n = 1'000'003;
  Tensor g = random_arena(n, 9, 1e-3);
  long double ref = 0;
  for (float x : g.to_vector<float>()) ref += (long double)x * x;
  EXPECT_NEAR(global_grad_norm(g), std::sqrt(double(ref)), 1e-13 * std::sqrt(double(ref)));
}

// ---- thread-count independence ---------------------------------------------------------------------------

class OptimThreads : public ::testing::Test {
 protected:
  void SetUp() override { saved_ = cpu_threads(); }
  void TearDown() override { set_cpu_threads(saved_); }
  int saved_ = 0;
};

TEST_F(OptimThreads, ResultsAreBitwiseIdenticalForAnyThreadCount) {
  // Several parameters, one spanning many 4096-blocks, odd sizes, alignment gaps.
  const std::vector<ParamRange> ranges = {{"big", 0, 250'001, true},
                                          {"bias", 250'016, 777, false},
                                          {"mid", 250'800, 40'000, true},
                                          {"gain", 290'800, 3, false},
                                          {"mid2", 290'816, 70'001, true}};
  const int64_t n = 360'832;
  const std::vector<int> thread_counts = {1, 2, 3, 7};
  for (const std::string type : {"adamw", "lamb"}) {
    SCOPED_TRACE(type);
    OptimizerConfig cfg = adamw_config(0.1);
    cfg.type = type;
    std::vector<Tensor> results;
    std::vector<double> norms;
    for (int threads : thread_counts) {
      set_cpu_threads(threads);
      auto opt = Optimizer::create(cfg, ranges, n);
      Tensor values = random_arena(n, 21);
      for (int k = 0; k < 3; ++k) {
        Tensor g = random_arena(n, 200 + uint64_t(k), 0.5);
        norms.push_back(clip_grad_norm(g, 100.0));
        opt->step(values, g, 1e-3);
      }
      results.push_back(values);
      results.push_back(opt->state()[1].second.clone());
    }
    for (size_t t = 1; t < thread_counts.size(); ++t) {
      EXPECT_TRUE(bitwise_equal(results[0], results[2 * t])) << thread_counts[t] << " threads: values";
      EXPECT_TRUE(bitwise_equal(results[1], results[2 * t + 1])) << thread_counts[t] << " threads: exp_avg_sq";
      for (size_t k = 0; k < 3; ++k) EXPECT_EQ(norms[k], norms[3 * t + k]) << thread_counts[t] << " threads: norm";
    }
  }
}

// ---- schedules -----------------------------------------------------------------------------------------

ScheduleConfig schedule(const std::string& type, double warmup_ratio = 0.1, double lr_offset = 1e-5) {
  ScheduleConfig s;
  s.type = type;
  s.warmup_ratio = warmup_ratio;
  s.lr_offset = lr_offset;
  return s;
}

// docs/model.md §4.2, written out independently of the implementation.
double spec_cyclic(double P, double O, int64_t C, double w, double wdeg, double deg, int64_t t) {
  const double x = double(t % C) / double(C);
  const double f = x < w ? std::pow(x / w, wdeg) : std::pow(1 - (x - w) / (1 - w), deg);
  return P * f + O;
}

TEST(Schedule, CyclicPolyFollowsTheSpec) {
  OptimizerConfig opt;
  opt.learning_rate = 1e-3;
  ScheduleConfig s = schedule("cyclic_poly");
  s.cycle_steps = 100;
  s.warmup_degree = 2.0;
  s.degree = 1.5;
  const double O = 1e-5;
  EXPECT_EQ(learning_rate_at(s, opt, 0, 1000), O);  // t = 0 gives lr_offset
  EXPECT_DOUBLE_EQ(learning_rate_at(s, opt, 5, 1000), 1e-3 * 0.25 + O);
  EXPECT_DOUBLE_EQ(learning_rate_at(s, opt, 10, 1000), 1e-3 + O);  // warmup end: the peak
  EXPECT_DOUBLE_EQ(learning_rate_at(s, opt, 55, 1000), 1e-3 * std::pow(0.5, 1.5) + O);
  EXPECT_EQ(learning_rate_at(s, opt, 100, 1000), O);  // restart at C
  EXPECT_EQ(learning_rate_at(s, opt, 101, 1000), learning_rate_at(s, opt, 1, 1000));
  EXPECT_EQ(learning_rate_at(s, opt, 255, 1000), learning_rate_at(s, opt, 55, 1000));
  for (int64_t t : {0, 1, 3, 9, 10, 11, 50, 99, 100, 101, 110, 199, 200, 345})
    EXPECT_EQ(learning_rate_at(s, opt, t, 1000), spec_cyclic(1e-3, O, 100, 0.1, 2.0, 1.5, t)) << t;

  // cycle_steps 0 uses max_steps; degree 1 decays linearly to the offset at t = C.
  s.cycle_steps = 0;
  s.warmup_degree = s.degree = 1.0;
  EXPECT_DOUBLE_EQ(learning_rate_at(s, opt, 20, 200), 1e-3 + O);
  EXPECT_DOUBLE_EQ(learning_rate_at(s, opt, 110, 200), 0.5e-3 + O);
  EXPECT_NEAR(learning_rate_at(s, opt, 199, 200), 1e-3 / 180 + O, 1e-18);
  EXPECT_EQ(learning_rate_at(s, opt, 200, 200), O);
  // degree 0: linear warmup, then constant.
  s.degree = 0.0;
  EXPECT_DOUBLE_EQ(learning_rate_at(s, opt, 10, 200), 0.5e-3 + O);
  EXPECT_EQ(learning_rate_at(s, opt, 150, 200), 1e-3 + O);
  // No warmup: the cycle starts at the peak.
  s.warmup_ratio = 0.0;
  s.degree = 1.0;
  EXPECT_EQ(learning_rate_at(s, opt, 0, 200), 1e-3 + O);
}

TEST(Schedule, ConstantLinearCosine) {
  OptimizerConfig opt;
  opt.learning_rate = 2e-4;
  const double P = 2e-4, O = 1e-5;
  for (int64_t t : {0, 7, 5000}) EXPECT_EQ(learning_rate_at(schedule("constant"), opt, t, 100), P + O);

  const ScheduleConfig lin = schedule("linear");
  EXPECT_EQ(learning_rate_at(lin, opt, 0, 200), O);
  EXPECT_DOUBLE_EQ(learning_rate_at(lin, opt, 10, 200), 0.5 * P + O);
  EXPECT_DOUBLE_EQ(learning_rate_at(lin, opt, 20, 200), P + O);
  EXPECT_DOUBLE_EQ(learning_rate_at(lin, opt, 110, 200), 0.5 * P + O);
  EXPECT_EQ(learning_rate_at(lin, opt, 200, 200), O);
  EXPECT_EQ(learning_rate_at(lin, opt, 350, 200), O);  // no cycling past max_steps

  const ScheduleConfig cos = schedule("cosine");
  EXPECT_EQ(learning_rate_at(cos, opt, 0, 200), O);
  EXPECT_DOUBLE_EQ(learning_rate_at(cos, opt, 10, 200), 0.5 * P + O);
  EXPECT_DOUBLE_EQ(learning_rate_at(cos, opt, 20, 200), P + O);
  EXPECT_DOUBLE_EQ(learning_rate_at(cos, opt, 65, 200), P * 0.5 * (1 + std::cos(std::numbers::pi * 0.25)) + O);
  EXPECT_NEAR(learning_rate_at(cos, opt, 110, 200), 0.5 * P + O, 1e-18);
  EXPECT_EQ(learning_rate_at(cos, opt, 200, 200), O);
  EXPECT_EQ(learning_rate_at(cos, opt, 999, 200), O);
  // Without warmup both start at the peak.
  EXPECT_EQ(learning_rate_at(schedule("linear", 0.0, 0.0), opt, 0, 200), P);
  EXPECT_EQ(learning_rate_at(schedule("cosine", 0.0, 0.0), opt, 0, 200), P);
}

TEST(Schedule, ErrorsNameTheKey) {
  OptimizerConfig opt;
  auto msg = [&](ScheduleConfig s, int64_t max_steps = 100) {
    return error_of([&] { learning_rate_at(s, opt, 0, max_steps); });
  };
  EXPECT_TRUE(contains(msg(schedule("EE")),
                       "training.schedule.type: 'EE' is not one of cyclic_poly, constant, linear, cosine"));
  EXPECT_TRUE(contains(msg(schedule("linear", 1.0)), "training.schedule.warmup_ratio: 1 is outside [0, 1)"));
  EXPECT_TRUE(contains(msg(schedule("cyclic_poly", -0.1)), "training.schedule.warmup_ratio"));
  EXPECT_TRUE(contains(msg(schedule("linear"), 0), "training.max_steps"));
  EXPECT_TRUE(contains(msg(schedule("cyclic_poly"), 0), "training.max_steps"));
  EXPECT_TRUE(contains(msg(schedule("cosine", 0.1, -1e-3)), "training.schedule.lr_offset"));
  ScheduleConfig s = schedule("cyclic_poly");
  s.cycle_steps = -5;
  EXPECT_TRUE(contains(msg(s), "training.schedule.cycle_steps"));
  s.cycle_steps = 50;
  EXPECT_EQ(msg(s, 0), "");  // an explicit cycle needs no max_steps
  s.degree = -1;
  EXPECT_TRUE(contains(msg(s), "training.schedule.degree"));
  EXPECT_EQ(msg(schedule("constant"), 0), "");
  opt.learning_rate = -1e-4;
  EXPECT_TRUE(contains(msg(schedule("constant")), "training.optimizer.learning_rate"));
}

}  // namespace
