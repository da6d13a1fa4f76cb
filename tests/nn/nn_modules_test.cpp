// The nn modules one at a time, in float64: finite-difference gradients of every input and every parameter
// (norm/activation registry §1.2, embeddings §1.3, FFNs §1.9, heads §1.11, one DANet layer §1.10), the
// MaxNorm tie rule and zero rows against the spec formulas computed on the host, dropout masks, and gradient
// accumulation (backward adds into parameter grads).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backend/ops.h"
#include "gradcheck.h"
#include "nn/danet_layer.h"
#include "nn/embeddings.h"
#include "nn/ffn.h"
#include "nn/heads.h"
#include "nn/linear.h"
#include "nn/norm.h"
#include "nn/relpe.h"

using namespace dense;
using namespace dense::nn;
using dense::testing::check_gradients;
using dense::testing::GradVar;
using dense::testing::random_tensor;
using dense::testing::relative_error;

namespace {

constexpr DType kF64 = DType::F64;

// Weights well away from the spec's tiny init so that every path carries signal in the checks.
void randomize(ParameterSet& params, uint64_t seed) {
  for (auto& p : params.all()) {
    if (p.kind == ParamKind::Gain) {
      ops::fill_uniform(p.value, 0.6, 1.4, seed ^ hash_name(p.name), 0);
    } else {
      ops::fill_normal(p.value, 0.0, p.kind == ParamKind::Bias ? 0.3 : 0.4, seed ^ hash_name(p.name), 0);
    }
  }
}

void materialize(ParameterSet& params, uint64_t seed = 3) {
  params.materialize(kF64, Device::cpu());
  randomize(params, seed);
}

// {input vars..., every parameter of the set}.
std::vector<GradVar> vars_with_params(std::vector<GradVar> inputs, ParameterSet& params) {
  for (auto& p : params.all()) inputs.push_back({p.name, p.value, p.grad});
  return inputs;
}

Tensor scalar(double v) { return Tensor::full({1}, v, kF64); }

Context training_ctx(uint64_t seed = 77) { return Context{true, Generator(seed, 0)}; }

// Moves every element at least `margin` away from the kink at 0 (and, for hardtanh, from the kinks at ±1).
Tensor away_from_kinks(const Tensor& t, bool unit_kinks, double margin = 0.05) {
  auto v = t.to_vector<double>();
  for (double& x : v) {
    if (std::abs(x) < margin) x = x < 0 ? x - margin : x + margin;
    if (unit_kinks && std::abs(std::abs(x) - 1.0) < margin) {
      const double sgn = x < 0 ? -1.0 : 1.0;
      x = sgn * (std::abs(x) < 1.0 ? 1.0 - margin : 1.0 + margin);
    }
  }
  return Tensor::from_vector(v, t.shape(), kF64);
}

// backward twice after one forward: every parameter gradient must come out doubled (+=, never =).
void expect_backward_accumulates(ParameterSet& params, const std::function<void()>& forward,
                                 const std::function<void()>& backward) {
  params.zero_grad();
  forward();
  backward();
  const Tensor once = params.grads().clone();
  EXPECT_GT(ops::max_abs(once), 0.0) << "no parameter gradient at all";
  backward();
  EXPECT_LT(relative_error(params.grads(), ops::scale(once, 2.0)), 1e-13);
  for (auto& p : params.all()) {
    const Tensor g1 = once.slice(0, p.arena_offset, p.arena_offset + p.value.numel());
    if (ops::max_abs(g1) == 0.0) continue;
    EXPECT_LT(relative_error(p.grad, ops::scale(g1, 2.0)), 1e-13) << p.name << " is overwritten, not accumulated";
  }
}

// ---- registry ----------------------------------------------------------------------------------------

struct NamedNorm {
  std::string name;
  NormSpec spec;
};

std::vector<NamedNorm> row_norms() {
  std::vector<NamedNorm> out;
  for (const char* n :
       {"max_norm", "scaled_max_norm", "prescaled_max_norm", "uncentered_ln", "uncentered_fixed_ln", "standard_ln"})
    out.push_back({n, parse_norm(n, "test_ln_type")});
  out.push_back({"layer_norm_spec", layer_norm_spec(1e-12)});
  return out;
}

const std::vector<std::string> kActivations = {"gelu", "gelu_tanh", "legacy_gelu", "relu",           "tanh",
                                               "silu", "sigmoid",   "leaky_relu",  "leaky_relu_0.1", "hardtanh"};

// A Norm with its own parameters (gains drawn in [0.6, 1.4], biases Normal(0, 0.3)).
struct NormHarness {
  ParameterSet params;
  Norm norm;
  NormHarness(const NormSpec& spec, int64_t d) : norm(params, "norm", spec, d) { materialize(params); }
  Parameter* gain() { return params.find("norm.weight"); }
};

// ================================================================================================
// Norms and activations (docs/model.md §1.2)
// ================================================================================================

TEST(NnModulesNorm, RowNormsMatchFiniteDifferences) {
  for (const auto& [name, spec] : row_norms()) {
    SCOPED_TRACE(name);
    NormHarness h(spec, 8);
    Tensor x = random_tensor({2, 3, 8}, 21);
    Tensor dx = Tensor::zeros(x.shape(), kF64);
    check_gradients([&] { return h.norm.forward(x); }, [&](const Tensor& w) { h.norm.backward(w, dx, 0.0); },
                    vars_with_params({{"x", x, dx}}, h.params));
  }
}

TEST(NnModulesNorm, ActivationsMatchFiniteDifferences) {
  for (const auto& name : kActivations) {
    SCOPED_TRACE(name);
    NormHarness h(parse_norm(name, "test_ln_type"), 8);
    EXPECT_TRUE(h.params.all().empty());
    const Tensor x = away_from_kinks(random_tensor({2, 3, 8}, 31, 1.5), name == "hardtanh");
    Tensor dx = Tensor::zeros(x.shape(), kF64);
    check_gradients([&] { return h.norm.forward(x); }, [&](const Tensor& w) { dx.copy_(h.norm.backward(w)); },
                    {{"x", x, dx}});
    // parse_activation accepts the same names and gives the same spec.
    const NormSpec a = parse_activation(name, "pooler_act");
    EXPECT_EQ(a.kind, NormSpec::Act);
    EXPECT_EQ(a.act, h.norm.spec().act);
    EXPECT_EQ(a.slope, h.norm.spec().slope);
  }
}

// Rows of zeros: y = 0 and, by the spec formula (sign(0) = 0, no extra term), dx = g ⊙ dy / ε. The non-zero
// rows and the gains go through finite differences as usual (a zero row stays zero under a gain perturbation).
TEST(NnModulesNorm, ZeroRowsGiveZeroOutputAndSpecGradient) {
  for (const char* name :
       {"max_norm", "scaled_max_norm", "prescaled_max_norm", "uncentered_ln", "uncentered_fixed_ln"}) {
    SCOPED_TRACE(name);
    const int64_t d = 8;
    NormHarness h(parse_norm(name, "test_ln_type"), d);
    Tensor x = random_tensor({2, 3, d}, 41);
    Tensor xf = x.view({6, d});
    xf.select(0, 2).zero_();
    xf.select(0, 5).zero_();
    Tensor dx = Tensor::zeros(x.shape(), kF64);
    Tensor dxf = dx.view({6, d});
    check_gradients([&] { return h.norm.forward(x); }, [&](const Tensor& w) { h.norm.backward(w, dx, 0.0); },
                    vars_with_params({{"x rows 0-1", xf.slice(0, 0, 2), dxf.slice(0, 0, 2)},
                                      {"x rows 3-4", xf.slice(0, 3, 5), dxf.slice(0, 3, 5)}},
                                     h.params));

    const Tensor y = h.norm.forward(x);
    const Tensor dy = random_tensor(x.shape(), 43);
    const auto dxv = h.norm.backward(dy).to_vector<double>();
    const auto yv = y.to_vector<double>(), dyv = dy.to_vector<double>();
    const std::vector<double> g =
        h.gain() ? h.gain()->value.to_vector<double>() : std::vector<double>(static_cast<size_t>(d), 1.0);
    const double eps = h.norm.spec().eps;
    for (int64_t r : {2, 5})
      for (int64_t c = 0; c < d; ++c) {
        const size_t i = size_t(r * d + c);
        EXPECT_EQ(yv[i], 0.0);
        const double expected = g[size_t(c)] * dyv[i] / eps;
        EXPECT_NEAR(dxv[i], expected, 1e-13 * std::abs(expected)) << "row " << r << " col " << c;
      }
  }
  // max_norm's ε = 1e-3 is large enough for central differences *at* a zero row too, with h ≪ ε (the map
  // x/(max|x| + ε) is differentiable at 0 with derivative I/ε, but its curvature there is ~1/ε², so h = 1e-6
  // would leave a 1e-3 truncation error; h = 1e-10 leaves 1e-7).
  NormHarness h(parse_norm("max_norm", "test_ln_type"), 8);
  Tensor x = random_tensor({4, 8}, 45);
  x.select(0, 1).zero_();
  x.select(0, 3).zero_();
  Tensor dx = Tensor::zeros(x.shape(), kF64);
  check_gradients(
      [&] { return h.norm.forward(x); }, [&](const Tensor& w) { h.norm.backward(w, dx, 0.0); },
      {{"zero row 1", x.slice(0, 1, 2), dx.slice(0, 1, 2)}, {"zero row 3", x.slice(0, 3, 4), dx.slice(0, 3, 4)}}, 1e-6,
      1e-10);
}

// Ties: finite differences are undefined there, so the backward is checked against the spec formula on the host:
// dx = t/s with t = dy (⊙ g for scaled), plus at the FIRST argmax only −sign(x_j*)·(Σ t_i x_i)/s².
struct TieCase {
  std::string name;
  std::vector<double> gain;  // empty: no gain
};

TEST(NnModulesNorm, MaxNormFamilyTiesFollowTheFirstArgmaxRule) {
  const int64_t d = 4, rows = 5;
  for (const TieCase& tc : {TieCase{"max_norm", {}}, TieCase{"scaled_max_norm", {0.5, 1.5, 2.0, 1.0}},
                            TieCase{"prescaled_max_norm", {1.0, 2.0, 1.0, 0.5}}}) {
    SCOPED_TRACE(tc.name);
    const bool prescaled = tc.name == "prescaled_max_norm";
    NormHarness h(parse_norm(tc.name, "test_ln_type"), d);
    std::vector<double> g(static_cast<size_t>(d), 1.0);
    if (!tc.gain.empty()) {
      g = tc.gain;
      h.gain()->value.copy_(Tensor::from_vector(g, {d}, kF64));
    }
    // Row 0: |x| ties at 0, 1, 3 (first positive); row 2: ties, first negative; row 1: zeros; row 3: a tie between
    // ±0.5 with a smaller entry; row 4: no tie. For prescaled the ties are built in u = g ⊙ x instead.
    std::vector<double> u = {2, -2, 1, 2, 0, 0, 0, 0, -3, 1, 3, -3, 0.5, -0.5, 0.5, 0.25, 0.1, -0.7, 0.3, 0.2};
    std::vector<double> xs = u;
    if (prescaled)
      for (int64_t i = 0; i < rows * d; ++i) xs[size_t(i)] = u[size_t(i)] / g[size_t(i % d)];
    if (!prescaled) u = xs;  // the quantity whose max defines s: x itself
    const Tensor x = Tensor::from_vector(xs, {rows, d}, kF64);
    const double eps = h.norm.spec().eps;
    const auto y = h.norm.forward(x).to_vector<double>();
    const auto dyv = random_tensor({rows, d}, 51).to_vector<double>();
    h.params.zero_grad();
    const auto dx = h.norm.backward(Tensor::from_vector(dyv, {rows, d}, kF64)).to_vector<double>();
    std::vector<double> dg(static_cast<size_t>(d), 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      auto at = [&](const std::vector<double>& v, int64_t c) { return v[size_t(r * d + c)]; };
      int64_t jstar = 0;
      for (int64_t c = 1; c < d; ++c)
        if (std::abs(at(u, c)) > std::abs(at(u, jstar))) jstar = c;
      const double s = std::abs(at(u, jstar)) + eps;
      const double inv = 1.0 / s;
      const double sgn = at(u, jstar) > 0 ? 1.0 : (at(u, jstar) < 0 ? -1.0 : 0.0);
      // Forward values.
      for (int64_t c = 0; c < d; ++c) {
        const double expected = tc.name == "max_norm"          ? at(xs, c) * inv
                                : tc.name == "scaled_max_norm" ? at(xs, c) * inv * g[size_t(c)]
                                                               : at(xs, c) * g[size_t(c)] * inv;
        EXPECT_DOUBLE_EQ(at(y, c), expected) << "y row " << r << " col " << c;
      }
      // Backward.
      std::vector<double> expected(static_cast<size_t>(d));
      if (prescaled) {
        double dot = 0;
        for (int64_t c = 0; c < d; ++c) dot += at(dyv, c) * at(u, c);
        for (int64_t c = 0; c < d; ++c) {
          double du = at(dyv, c) / s;
          if (c == jstar) du -= sgn * dot / (s * s);
          expected[size_t(c)] = du * g[size_t(c)];
          dg[size_t(c)] += du * at(xs, c);
        }
      } else {
        double dot = 0;
        for (int64_t c = 0; c < d; ++c) dot += at(dyv, c) * g[size_t(c)] * at(xs, c);
        for (int64_t c = 0; c < d; ++c) {
          expected[size_t(c)] = at(dyv, c) * g[size_t(c)] / s - (c == jstar ? sgn * dot / (s * s) : 0.0);
          dg[size_t(c)] += at(dyv, c) * at(xs, c) / s;
        }
      }
      for (int64_t c = 0; c < d; ++c)
        EXPECT_NEAR(at(dx, c), expected[size_t(c)], 1e-13 * (1.0 + std::abs(expected[size_t(c)])))
            << "dx row " << r << " col " << c << (c == jstar ? " (first argmax)" : "");
    }
    if (h.gain()) {
      const auto dgv = h.gain()->grad.to_vector<double>();
      for (int64_t c = 0; c < d; ++c)
        EXPECT_NEAR(dgv[size_t(c)], dg[size_t(c)], 1e-13 * (1.0 + std::abs(dg[size_t(c)])));
    }
  }
}

TEST(NnModulesNorm, BackwardBetaAccumulatesIntoDx) {
  for (const auto& [name, spec] : row_norms()) {
    SCOPED_TRACE(name);
    NormHarness h(spec, 8);
    const Tensor x = random_tensor({3, 8}, 61), dy = random_tensor({3, 8}, 62), prior = random_tensor({3, 8}, 63);
    h.norm.forward(x);
    const Tensor fresh = h.norm.backward(dy);
    Tensor dx = prior.clone();
    h.norm.backward(dy, dx, 1.0);
    EXPECT_LT(relative_error(dx, ops::add(fresh, prior)), 1e-14);
    if (h.params.all().empty()) continue;
    expect_backward_accumulates(
        h.params, [&] { h.norm.forward(x); }, [&] { h.norm.backward(dy); });
  }
}

// The row-norm op checks what its kernels trust: shapes, dtypes and the forward's stats.
TEST(NnModulesNorm, RowNormOpsRejectMismatchedTensors) {
  auto message = [](const std::function<void()>& f) -> std::string {
    try {
      f();
    } catch (const std::exception& e) {
      return e.what();
    }
    return "";
  };
  const Tensor x = random_tensor({3, 8}, 64), dy = random_tensor({3, 8}, 65), g = random_tensor({8}, 66);
  Tensor y = Tensor::empty({3, 8}, DType::F64), stats = Tensor::empty({3, 2}, DType::F64),
         dx = Tensor::empty({3, 8}, DType::F64);
  ops::rownorm_forward(RowNorm::MaxNorm, x, nullptr, nullptr, 1e-3, y, stats);
  Tensor y32 = Tensor::empty({3, 8}, DType::F32);
  EXPECT_NE(
      message([&] { ops::rownorm_forward(RowNorm::MaxNorm, x, nullptr, nullptr, 1e-3, y32, stats); }).find("dtype"),
      std::string::npos);
  Tensor short_stats = Tensor::empty({2, 2}, DType::F64);
  EXPECT_NE(message([&] {
              ops::rownorm_backward(RowNorm::MaxNorm, x, nullptr, short_stats, dy, 0.0, dx, nullptr, nullptr);
            }).find("stats must be f64 [3, 2]"),
            std::string::npos);
  EXPECT_NE(message([&] {
              ops::rownorm_backward(RowNorm::ScaledMaxNorm, x, nullptr, stats, dy, 0.0, dx, nullptr, nullptr);
            }).find("needs a gain"),
            std::string::npos);
  Tensor wide = Tensor::zeros({9}, DType::F64);
  EXPECT_NE(message([&] {
              ops::rownorm_backward(RowNorm::ScaledMaxNorm, x, &g, stats, dy, 0.0, dx, &wide, nullptr);
            }).find("for width 8"),
            std::string::npos);
  const Tensor dy32 = dy.to(DType::F32);
  EXPECT_NE(message([&] {
              ops::rownorm_backward(RowNorm::MaxNorm, x, nullptr, stats, dy32, 0.0, dx, nullptr, nullptr);
            }).find("dtype"),
            std::string::npos);
  EXPECT_EQ(message([&] { ops::rownorm_backward(RowNorm::MaxNorm, x, nullptr, stats, dy, 0.0, dx, nullptr, nullptr); }),
            "");
}

// ================================================================================================
// Linear and Dropout
// ================================================================================================

TEST(NnModulesLinear, MatchesFiniteDifferences) {
  for (bool bias : {false, true}) {
    SCOPED_TRACE(bias ? "with bias" : "no bias");
    ParameterSet params;
    Linear lin(params, "dense", 5, 4, bias, Init::normal(0.4));
    materialize(params);
    EXPECT_EQ(lin.bias() != nullptr, bias);
    Tensor x = random_tensor({2, 3, 5}, 71);
    Tensor dx = Tensor::zeros(x.shape(), kF64);
    check_gradients([&] { return lin.forward(x); }, [&](const Tensor& w) { dx.copy_(lin.backward(w)); },
                    vars_with_params({{"x", x, dx}}, params));

    // dx = dy W + beta dx, and the weight-only path (dx null) gives the same parameter gradients.
    const Tensor dy = random_tensor({2, 3, 4}, 72), prior = random_tensor({2, 3, 5}, 73);
    lin.forward(x);
    params.zero_grad();
    const Tensor fresh = lin.backward(dy);
    const Tensor with_dx = params.grads().clone();
    Tensor acc = prior.clone();
    lin.backward(dy, &acc, 1.0);
    EXPECT_LT(relative_error(acc, ops::add(fresh, prior)), 1e-14);
    params.zero_grad();
    lin.backward(dy, nullptr, 0.0);
    EXPECT_LT(relative_error(params.grads(), with_dx), 1e-15);
    expect_backward_accumulates(
        params, [&] { lin.forward(x); }, [&] { lin.backward(dy); });
  }
}

TEST(NnModulesDropout, MasksAgreeAndKeepOneMinusP) {
  const double p = 0.3;
  const int64_t n = 100000;
  Dropout drop(p);
  Context ctx = training_ctx(5);
  const Tensor x = random_tensor({n}, 81);
  const auto xv = x.to_vector<double>();
  const auto y = drop.forward(x, ctx).to_vector<double>();
  const auto dx = drop.backward(Tensor::full({n}, 1.0, kF64)).to_vector<double>();
  int64_t kept = 0, mismatched = 0, wrong_scale = 0;
  for (size_t i = 0; i < size_t(n); ++i) {
    const bool k = y[i] != 0.0;
    kept += k;
    mismatched += k != (dx[i] != 0.0);
    if (k && (std::abs(y[i] - xv[i] / (1 - p)) > 1e-15 * std::abs(y[i]) || std::abs(dx[i] - 1 / (1 - p)) > 1e-15))
      ++wrong_scale;
  }
  EXPECT_EQ(mismatched, 0) << "forward and backward masks differ";
  EXPECT_EQ(wrong_scale, 0) << "kept elements are not scaled by 1/(1-p)";
  EXPECT_NEAR(double(kept) / double(n), 1 - p, 0.01);  // σ ≈ 0.0015

  // The next draw in the same context uses fresh counters: a different mask.
  const auto y2 = drop.forward(x, ctx).to_vector<double>();
  int64_t differ = 0;
  for (size_t i = 0; i < size_t(n); ++i) differ += (y[i] != 0.0) != (y2[i] != 0.0);
  EXPECT_GT(differ, n / 10);

  // Eval mode and p = 0 are the identity, forward and backward.
  Context eval;
  const Tensor ye = drop.forward(x, eval);
  EXPECT_EQ(ye.to_vector<double>(), xv);
  const Tensor dy = random_tensor({n}, 82);
  EXPECT_EQ(drop.backward(dy).to_vector<double>(), dy.to_vector<double>());
  Dropout none(0.0);
  Context train = training_ctx(6);
  EXPECT_EQ(none.forward(x, train).to_vector<double>(), xv);
  EXPECT_EQ(train.rng.offset(), 0u) << "p = 0 must not consume random draws";
}

// ================================================================================================
// Embeddings (docs/model.md §1.3)
// ================================================================================================

struct EmbCase {
  std::string label;
  PositionKind positions;
  int64_t type_vocab;
  std::string norm;
  double dropout;
};

struct EmbHarness {
  ParameterSet params;
  EmbeddingsConfig cfg;
  Embeddings emb;
  Tensor ids, types;
  EmbHarness(const EmbCase& c, int64_t B = 3, int64_t N = 6) {
    cfg.vocab = 11;
    cfg.hidden = 8;
    cfg.positions = c.positions;
    cfg.max_positions = 8;
    cfg.type_vocab = c.type_vocab;
    cfg.norm = parse_norm(c.norm, "embedding_ln_type");
    cfg.dropout = c.dropout;
    emb = Embeddings(params, "embeddings", cfg);
    materialize(params);
    // Only 5 distinct ids over 18 tokens: repeated rows must accumulate in the scatter-add.
    std::vector<int64_t> id(static_cast<size_t>(B * N)), ty(static_cast<size_t>(B * N));
    for (int64_t i = 0; i < B * N; ++i) {
      id[size_t(i)] = (i * 7 + 3) % 5 * 2;  // ids 0, 2, 4, 6, 8
      ty[size_t(i)] = (i / 4) % 2;
    }
    ids = Tensor::from_vector(id, {B, N}, DType::I64);
    types = Tensor::from_vector(ty, {B, N}, DType::I64);
  }
  Tensor forward(bool training) {
    Context ctx{training, Generator(99, 0)};  // a fresh context: the same dropout mask every call
    return emb.forward(ids, types, kF64, ctx);
  }
};

const std::vector<EmbCase> kEmbCases = {
    {"learned, no types, no norm", PositionKind::Learned, 0, "none", 0.0},
    {"sinusoidal, types, max_norm", PositionKind::Sinusoidal, 2, "max_norm", 0.0},
    {"no positions, types, standard_ln, dropout", PositionKind::None, 2, "standard_ln", 0.2},
    {"learned, types, standard_ln, dropout", PositionKind::Learned, 2, "standard_ln", 0.2},
    {"sinusoidal, no types, scaled_max_norm, dropout", PositionKind::Sinusoidal, 0, "scaled_max_norm", 0.2},
};

TEST(NnModulesEmbeddings, TablesMatchFiniteDifferences) {
  for (const auto& c : kEmbCases) {
    SCOPED_TRACE(c.label);
    EmbHarness h(c);
    const bool training = c.dropout > 0;
    check_gradients([&] { return h.forward(training); }, [&](const Tensor& w) { h.emb.backward(w); },
                    vars_with_params({}, h.params));
    if (training) {
      // The mask is really applied: some outputs are exactly zero.
      const auto y = h.forward(true).to_vector<double>();
      int64_t zeros = 0;
      for (double v : y) zeros += v == 0.0;
      EXPECT_GT(zeros, 0);
    }
    expect_backward_accumulates(
        h.params, [&] { h.forward(training); },
        [&] {
          h.emb.backward(random_tensor({3, 6, 8}, 91));
        });
  }
}

TEST(NnModulesEmbeddings, ForwardIsTheSumOfTheTables) {
  for (const auto& c : {EmbCase{"learned", PositionKind::Learned, 2, "none", 0.0},
                        EmbCase{"sinusoidal", PositionKind::Sinusoidal, 0, "none", 0.0},
                        EmbCase{"none", PositionKind::None, 0, "none", 0.0}}) {
    SCOPED_TRACE(c.label);
    EmbHarness h(c);
    const int64_t B = 3, N = 6, d = 8;
    const auto y = h.forward(false).to_vector<double>();
    const auto word = h.params.at("embeddings.word_embeddings.weight").value.to_vector<double>();
    const auto sin = sinusoidal_table(8, d, kF64, Device::cpu()).to_vector<double>();
    std::vector<double> pos, typ;
    if (c.positions == PositionKind::Learned)
      pos = h.params.at("embeddings.position_embeddings.weight").value.to_vector<double>();
    if (c.type_vocab) typ = h.params.at("embeddings.token_type_embeddings.weight").value.to_vector<double>();
    const auto id = h.ids.to_vector<int64_t>(), ty = h.types.to_vector<int64_t>();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i < N; ++i)
        for (int64_t k = 0; k < d; ++k) {
          const size_t t = size_t(b * N + i);
          double e = word[size_t(id[t] * d + k)];
          if (c.positions == PositionKind::Learned) e += pos[size_t(i * d + k)];
          if (c.positions == PositionKind::Sinusoidal) e += sin[size_t(i * d + k)];
          if (c.type_vocab) e += typ[size_t(ty[t] * d + k)];
          EXPECT_NEAR(y[size_t(t * d + k)], e, 1e-15) << b << "," << i << "," << k;
        }
  }
  // Spec §1.3: even dims sin(p ω_i), odd dims cos(p ω_i), ω_i = 10000^(−2i/d).
  const auto t = sinusoidal_table(5, 6, kF64, Device::cpu()).to_vector<double>();
  for (int64_t p = 0; p < 5; ++p)
    for (int64_t i = 0; i < 3; ++i) {
      const double w = std::pow(10000.0, -2.0 * double(i) / 6.0);
      EXPECT_NEAR(t[size_t(p * 6 + 2 * i)], std::sin(double(p) * w), 1e-15);
      EXPECT_NEAR(t[size_t(p * 6 + 2 * i + 1)], std::cos(double(p) * w), 1e-15);
    }
}

// ================================================================================================
// FFNs (docs/model.md §1.9)
// ================================================================================================

TEST(NnModulesFFN, ExpandedFFNMatchesFiniteDifferences) {
  for (double p : {0.0, 0.3}) {
    SCOPED_TRACE(p);
    ParameterSet params;
    ExpandedFFN ffn(params, "ffn", 8, 2, p);
    materialize(params);
    Tensor x = random_tensor({2, 3, 8}, 101);
    Tensor dx = Tensor::zeros(x.shape(), kF64);
    auto forward = [&] {
      Context ctx{p > 0, Generator(7, 0)};
      return ffn.forward(x, ctx);
    };
    check_gradients(
        forward, [&](const Tensor& w) { dx.copy_(ffn.backward(w)); }, vars_with_params({{"x", x, dx}}, params));
    // Padded rows stay exactly zero (no biases, ReLU(0) = 0).
    Tensor z = Tensor::zeros({1, 2, 8}, kF64);
    Context ctx;
    EXPECT_EQ(ops::max_abs(ffn.forward(z, ctx)), 0.0);
    const Tensor dz = random_tensor({2, 3, 8}, 102);
    expect_backward_accumulates(
        params, [&] { forward(); }, [&] { ffn.backward(dz); });
  }
}

TEST(NnModulesFFN, SwiGLUMatchesFiniteDifferences) {
  EXPECT_EQ(swiglu_width(1024, 4), 2816);
  EXPECT_EQ(swiglu_width(8, 2), 128);
  for (double p : {0.0, 0.3}) {
    SCOPED_TRACE(p);
    ParameterSet params;
    SwiGLU ffn(params, "ffn", 8, 2, p, 0.02);
    materialize(params);
    EXPECT_EQ(params.at("ffn.up.weight").value.shape(), (Shape{256, 8}));
    EXPECT_EQ(params.at("ffn.proj.weight").value.shape(), (Shape{8, 128}));
    Tensor x = random_tensor({2, 3, 8}, 111);
    Tensor dx = Tensor::zeros(x.shape(), kF64);
    auto forward = [&] {
      Context ctx{p > 0, Generator(8, 0)};
      return ffn.forward(x, ctx);
    };
    check_gradients(
        forward, [&](const Tensor& w) { dx.copy_(ffn.backward(w)); }, vars_with_params({{"x", x, dx}}, params), 1e-6,
        1e-6, 160);
    const Tensor dz = random_tensor({2, 3, 8}, 112);
    expect_backward_accumulates(
        params, [&] { forward(); }, [&] { ffn.backward(dz); });
  }
}

TEST(NnModulesFFN, DanetFFNDispatchesBothVariants) {
  for (bool swiglu : {false, true}) {
    SCOPED_TRACE(swiglu ? "swiglu" : "expanded");
    ParameterSet params;
    DanetFFN ffn(params, "ffn", 8, 2, swiglu, 0.2, 0.02);
    materialize(params);
    EXPECT_EQ(params.find("ffn.w1") != nullptr, !swiglu);
    EXPECT_EQ(params.find("ffn.up.weight") != nullptr, swiglu);
    Tensor x = random_tensor({2, 3, 8}, 121);
    Tensor dx = Tensor::zeros(x.shape(), kF64);
    check_gradients(
        [&] {
          Context ctx = training_ctx(9);
          return ffn.forward(x, ctx);
        },
        [&](const Tensor& w) { dx.copy_(ffn.backward(w)); }, vars_with_params({{"x", x, dx}}, params), 1e-6, 1e-6, 160);
  }
}

// ================================================================================================
// Heads (docs/model.md §1.11)
// ================================================================================================

struct MlmHarness {
  ParameterSet params;
  Parameter* word = nullptr;
  MlmHead head;
  MlmHarness(bool dense_bias, const std::string& act = "gelu", const std::string& norm = "standard_ln") {
    word = params.add("embeddings.word_embeddings.weight", {13, 8}, ParamKind::Embedding, Init::normal(0.02));
    MlmHeadConfig cfg;
    cfg.hidden = 8;
    cfg.vocab = 13;
    cfg.dense_bias = dense_bias;
    cfg.act = parse_activation(act, "lm_head_act");
    cfg.norm = parse_norm(norm, "lm_head_ln_type");
    head = MlmHead(params, "lm_head", cfg, word);
    materialize(params);
  }
};

Tensor mlm_labels(int64_t B, int64_t N, bool none_masked = false) {
  std::vector<int64_t> lab(static_cast<size_t>(B * N), -1);
  if (!none_masked)
    for (int64_t i = 0; i < B * N; ++i)
      if (i % 3 != 1) lab[size_t(i)] = (i * 5 + 2) % 13;
  return Tensor::from_vector(lab, {B, N}, DType::I64);
}

TEST(NnModulesMlmHead, LossMatchesFiniteDifferences) {
  for (bool dense_bias : {false, true}) {
    SCOPED_TRACE(dense_bias ? "dense bias" : "no dense bias");
    MlmHarness h(dense_bias);
    Tensor seq = random_tensor({2, 5, 8}, 131);
    const Tensor labels = mlm_labels(2, 5);
    Tensor dseq = Tensor::zeros(seq.shape(), kF64);
    auto forward = [&] {
      const Tensor logits = h.head.forward(seq, labels);
      EXPECT_EQ(logits.shape(), (Shape{h.head.count(), 13}));
      return scalar(h.head.loss());
    };
    check_gradients(
        forward, [&](const Tensor& w) { h.head.backward(w.item(), dseq); },
        vars_with_params({{"seq", seq, dseq}}, h.params));
    EXPECT_EQ(h.head.count(), 7);
    // Unmasked positions get no gradient.
    const auto ds = dseq.to_vector<double>();
    for (int64_t i = 1; i < 10; i += 3)
      for (int64_t c = 0; c < 8; ++c) EXPECT_EQ(ds[size_t(i * 8 + c)], 0.0);
    expect_backward_accumulates(
        h.params, [&] { forward(); },
        [&] {
          Tensor d = Tensor::zeros(seq.shape(), kF64);
          h.head.backward(0.7, d);
        });
  }
}

// The tied word table gets the embedding gradient and the decoder gradient in one buffer (docs/model.md §1.3, §1.11).
TEST(NnModulesMlmHead, TiedWordTableGetsBothContributions) {
  ParameterSet params;
  EmbeddingsConfig ec;
  ec.vocab = 13;
  ec.hidden = 8;
  ec.positions = PositionKind::Learned;
  ec.max_positions = 8;
  ec.norm = parse_norm("max_norm", "embedding_ln_type");
  Embeddings emb(params, "embeddings", ec);
  MlmHeadConfig hc;
  hc.hidden = 8;
  hc.vocab = 13;
  hc.act = parse_activation("gelu", "lm_head_act");
  hc.norm = parse_norm("uncentered_ln", "lm_head_ln_type");
  MlmHead head(params, "lm_head", hc, emb.word());
  materialize(params);
  std::vector<int64_t> id(10);
  for (size_t i = 0; i < id.size(); ++i) id[i] = int64_t((i * 4 + 1) % 13);
  const Tensor ids = Tensor::from_vector(id, {2, 5}, DType::I64);
  const Tensor labels = mlm_labels(2, 5);
  auto forward = [&] {
    Context ctx;
    head.forward(emb.forward(ids, Tensor(), kF64, ctx), labels);
    return scalar(head.loss());
  };
  auto backward = [&](const Tensor& w) {
    Tensor dseq = Tensor::zeros({2, 5, 8}, kF64);
    head.backward(w.item(), dseq);
    emb.backward(dseq);
  };
  check_gradients(forward, backward, vars_with_params({}, params));

  // Each path alone is a strict part of the total.
  forward();
  params.zero_grad();
  Tensor dseq = Tensor::zeros({2, 5, 8}, kF64);
  head.backward(1.0, dseq);
  const Tensor decoder_only = emb.word()->grad.clone();
  emb.backward(dseq);
  const Tensor total = emb.word()->grad.clone();
  EXPECT_GT(ops::max_abs(decoder_only), 0.0);
  EXPECT_GT(relative_error(total, decoder_only), 1e-3);
}

TEST(NnModulesMlmHead, BatchWithoutMaskedTokens) {
  MlmHarness h(false);
  const Tensor seq = random_tensor({2, 5, 8}, 141);
  const Tensor logits = h.head.forward(seq, mlm_labels(2, 5, true));
  EXPECT_EQ(h.head.count(), 0);
  EXPECT_EQ(logits.numel(), 0);
  EXPECT_EQ(h.head.loss(), 0.0);
  Tensor dseq = Tensor::zeros(seq.shape(), kF64);
  h.params.zero_grad();
  h.head.backward(1.0, dseq);
  EXPECT_EQ(ops::max_abs(dseq), 0.0);
  EXPECT_EQ(ops::max_abs(h.params.grads()), 0.0);
}

struct PoolCase {
  std::string label;
  PoolFunction function;
  bool dense;
  bool dense_bias;
  std::string act, norm;
};

TEST(NnModulesPooler, MatchesFiniteDifferences) {
  EXPECT_EQ(parse_pool_function("masked_mean", "pooler_function"), PoolFunction::MaskedMean);
  const int64_t B = 3, N = 5, d = 8;
  // Row 0 full, row 1 two pads, row 2 one real token at the front.
  std::vector<double> mv = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 0, 0, 0, 0};
  const Tensor mask = Tensor::from_vector(mv, {B, N}, kF64);
  std::vector<PoolCase> cases;
  for (auto [name, f] : {std::pair{"first", PoolFunction::First}, std::pair{"mean", PoolFunction::Mean},
                         std::pair{"max", PoolFunction::Max}, std::pair{"masked_mean", PoolFunction::MaskedMean}}) {
    cases.push_back({std::string(name) + " dense tanh standard_ln", f, true, false, "tanh", "standard_ln"});
    cases.push_back({std::string(name) + " dense+bias gelu_tanh", f, true, true, "gelu_tanh", "none"});
    cases.push_back({std::string(name) + " pooler_no_dense", f, false, false, "tanh", "none"});
  }
  for (const auto& c : cases) {
    SCOPED_TRACE(c.label);
    ParameterSet params;
    PoolerConfig cfg;
    cfg.hidden = d;
    cfg.function = c.function;
    cfg.dense = c.dense;
    cfg.dense_bias = c.dense_bias;
    cfg.act = parse_activation(c.act, "pooler_act");
    cfg.norm = parse_norm(c.norm, "pooler_ln_type");
    Pooler pooler(params, "pooler", cfg);
    materialize(params);
    EXPECT_EQ(params.all().empty(), !c.dense);
    Tensor seq = random_tensor({B, N, d}, 151);
    Tensor dseq = Tensor::zeros(seq.shape(), kF64);
    check_gradients([&] { return pooler.forward(seq, mask); }, [&](const Tensor& w) { pooler.backward(w, dseq); },
                    vars_with_params({{"seq", seq, dseq}}, params));
    if (!c.dense) {
      // The pooled values themselves, on the host.
      const auto p = pooler.forward(seq, mask).to_vector<double>();
      const auto s = seq.to_vector<double>();
      for (int64_t b = 0; b < B; ++b)
        for (int64_t k = 0; k < d; ++k) {
          double e = 0, cnt = 0, mx = -1e300;
          for (int64_t i = 0; i < N; ++i) {
            const double v = s[size_t((b * N + i) * d + k)];
            cnt += mv[size_t(b * N + i)];
            e += c.function == PoolFunction::MaskedMean ? v * mv[size_t(b * N + i)] : v;
            mx = std::max(mx, v);
          }
          const double expected = c.function == PoolFunction::First  ? s[size_t(b * N * d + k)]
                                  : c.function == PoolFunction::Max  ? mx
                                  : c.function == PoolFunction::Mean ? e / double(N)
                                                                     : e / cnt;
          EXPECT_NEAR(p[size_t(b * d + k)], expected, 1e-14) << b << "," << k;
        }
    } else {
      const Tensor dp = random_tensor({B, d}, 152);
      expect_backward_accumulates(
          params, [&] { pooler.forward(seq, mask); },
          [&] {
            Tensor ds = Tensor::zeros(seq.shape(), kF64);
            pooler.backward(dp, ds);
          });
    }
  }
}

TEST(NnModulesClassifier, CrossEntropyAndMseMatchFiniteDifferences) {
  for (int64_t labels : {3, 1}) {
    for (double p : {0.0, 0.3}) {
      SCOPED_TRACE(fmt::format("{} labels, dropout {}", labels, p));
      ParameterSet params;
      Classifier cls(params, "classifier", 8, labels, true, p, Init::normal(0.02));
      materialize(params);
      Tensor pooled = random_tensor({3, 8}, 161);
      const Tensor y = labels == 3 ? Tensor::from_vector(std::vector<int64_t>{0, 2, 1}, {3}, DType::I64)
                                   : Tensor::from_vector(std::vector<double>{0.5, -1.2, 2.0}, {3}, kF64);
      Tensor dpooled = Tensor::zeros(pooled.shape(), kF64);
      auto forward = [&] {
        Context ctx{p > 0, Generator(10, 0)};
        const Tensor logits = cls.forward(pooled, ctx);
        EXPECT_EQ(logits.shape(), (Shape{3, labels}));
        return scalar(cls.loss(y));
      };
      check_gradients(
          forward, [&](const Tensor& w) { dpooled.copy_(cls.backward(w.item())); },
          vars_with_params({{"pooled", pooled, dpooled}}, params));
      expect_backward_accumulates(
          params, [&] { forward(); }, [&] { cls.backward(0.9); });
      if (labels == 1 && p == 0.0) {
        // MSE against the float labels, on the host.
        Context ctx;
        const auto lo = cls.forward(pooled, ctx).to_vector<double>();
        const std::vector<double> t = {0.5, -1.2, 2.0};
        double mse = 0;
        for (size_t b = 0; b < 3; ++b) mse += (lo[b] - t[b]) * (lo[b] - t[b]) / 3.0;
        EXPECT_NEAR(cls.loss(y), mse, 1e-14);
      }
    }
  }
}

TEST(NnModulesMatchingHead, MatchesFiniteDifferences) {
  for (double p : {0.0, 0.2}) {
    SCOPED_TRACE(p);
    ParameterSet params;
    MatchingHead head(params, "matching", 8, 3, p, Init::normal(0.4));
    materialize(params);
    EXPECT_EQ(params.at("matching.dense.weight").value.shape(), (Shape{8, 32}));
    EXPECT_EQ(params.at("matching.classifier.weight").value.shape(), (Shape{3, 8}));
    EXPECT_EQ(params.all().size(), 2u) << "no biases";
    Tensor p1 = random_tensor({3, 8}, 171), p2 = random_tensor({3, 8}, 172);
    const Tensor labels = Tensor::from_vector(std::vector<int64_t>{2, 0, 1}, {3}, DType::I64);
    Tensor dp1 = Tensor::zeros(p1.shape(), kF64), dp2 = Tensor::zeros(p2.shape(), kF64);
    auto forward = [&] {
      Context ctx{p > 0, Generator(11, 0)};
      head.forward(p1, p2, ctx);
      return scalar(head.loss(labels));
    };
    check_gradients(
        forward,
        [&](const Tensor& w) {
          auto [a, b] = head.backward(w.item());
          dp1.copy_(a);
          dp2.copy_(b);
        },
        vars_with_params({{"p1", p1, dp1}, {"p2", p2, dp2}}, params));
    expect_backward_accumulates(
        params, [&] { forward(); }, [&] { head.backward(1.3); });
  }
}

// ================================================================================================
// One DANet layer (docs/model.md §1.10): global and local, cosine RelPE on x ("qkv"), the m scale with zero rows
// ================================================================================================

struct LayerHarness {
  ParameterSet params;
  std::unique_ptr<RelPE> relpe;
  DanetLayer layer;
  explicit LayerHarness(const DanetLayerConfig& cfg) {
    relpe = std::make_unique<RelPE>(RelPEType::Cosine, 16, cfg.attention.hidden / cfg.attention.heads,
                                    cfg.attention.heads, kF64, Device::cpu());
    layer = DanetLayer(params, "encoder.layer.0", cfg, relpe.get());
    materialize(params);
  }
};

struct LayerCase {
  std::string label;
  LayerKind kind;
  std::string pre, post;
  bool swiglu;
  double dropout;
};

TEST(NnModulesDanetLayer, MatchesFiniteDifferences) {
  const int64_t B = 2, N = 12, d = 8;
  // m: positive per-token factors, zero for the "padding" (the last three tokens of sequence 1 and one inside).
  std::vector<double> mv(static_cast<size_t>(B * N));
  for (int64_t i = 0; i < B * N; ++i) mv[size_t(i)] = 0.3 + 0.5 * double((i * 37) % 11) / 10.0;
  for (int64_t i : {5, 21, 22, 23}) mv[size_t(i)] = 0.0;
  const Tensor m = Tensor::from_vector(mv, {B * N}, kF64);
  for (const LayerCase& c :
       {LayerCase{"global max_norm/max_norm", LayerKind::Global, "max_norm", "max_norm", false, 0.0},
        LayerCase{"local scaled/prescaled", LayerKind::Local, "scaled_max_norm", "prescaled_max_norm", false, 0.0},
        LayerCase{"local swiglu dropout", LayerKind::Local, "max_norm", "scaled_max_norm", true, 0.2},
        LayerCase{"global swiglu uncentered_ln", LayerKind::Global, "uncentered_ln", "max_norm", true, 0.0}}) {
    SCOPED_TRACE(c.label);
    DanetLayerConfig cfg;
    cfg.attention.hidden = d;
    cfg.attention.heads = 2;
    cfg.attention.kind = c.kind;
    cfg.attention.window = 4;
    cfg.attention.dropout = c.dropout;
    cfg.attention.scheme = RelPEScheme::parse("qkv", "relpe_scheme");
    cfg.pre_norm = parse_norm(c.pre, "pre_attn_ln_type");
    cfg.post_norm = parse_norm(c.post, "post_attn_ln_type");
    cfg.expansion = 2;
    cfg.swiglu = c.swiglu;
    cfg.hidden_dropout = c.dropout;
    LayerHarness h(cfg);
    Tensor x = random_tensor({B, N, d}, 181);
    Tensor dx = Tensor::zeros(x.shape(), kF64);
    auto forward = [&] {
      Context ctx{c.dropout > 0, Generator(12, 0)};
      return h.layer.forward(x, m, ctx);
    };
    check_gradients(
        forward, [&](const Tensor& w) { dx.copy_(h.layer.backward(w)); }, vars_with_params({{"x", x, dx}}, h.params),
        1e-6, 1e-6, 160);
    // Rows with m = 0 are passed through unchanged (the residual only) and get dx = dy.
    const auto y = forward().to_vector<double>(), xv = x.to_vector<double>();
    const Tensor dy = random_tensor({B, N, d}, 182);
    const auto g = h.layer.backward(dy).to_vector<double>(), dyv = dy.to_vector<double>();
    for (int64_t r : {5, 21, 22, 23})
      for (int64_t k = 0; k < d; ++k) {
        EXPECT_EQ(y[size_t(r * d + k)], xv[size_t(r * d + k)]) << "row " << r;
        EXPECT_EQ(g[size_t(r * d + k)], dyv[size_t(r * d + k)]) << "row " << r;
      }
    expect_backward_accumulates(
        h.params, [&] { forward(); }, [&] { h.layer.backward(dy); });
  }
}

}  // namespace
