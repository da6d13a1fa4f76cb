// SoftmaxAttention and BertLayer: finite-difference gradients, a host-loop forward reference written from
// tests/reference/bert_reference.py, padding invariance and f32/f64 agreement.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "backend/ops.h"
#include "gradcheck.h"
#include "nn/bert_layer.h"
#include "nn/softmax_attention.h"

using namespace dense;
using namespace dense::nn;
using dense::testing::check_gradients;
using dense::testing::GradVar;
using dense::testing::random_tensor;
using dense::testing::relative_error;

namespace {

constexpr uint64_t kDropSeed = 77;
const std::string kAttn = "encoder.layer.0.attention";

Context make_ctx(bool training, uint64_t seed = kDropSeed) {
  Context c;
  c.training = training;
  c.rng = Generator(seed, 0);
  return c;
}

// [B, n] with 1 for positions < lengths[b].
Tensor make_mask(const std::vector<int64_t>& lengths, int64_t n, DType dtype = DType::F64) {
  std::vector<double> v;
  for (int64_t len : lengths)
    for (int64_t j = 0; j < n; ++j) v.push_back(j < len ? 1.0 : 0.0);
  return Tensor::from_vector(v, {int64_t(lengths.size()), n}, dtype);
}

// The default init (std 0.02, zero biases, unit gains) makes the attention almost uniform and hides errors
// in the bias and gain paths, so the tests draw every parameter at a larger scale.
void randomize(ParameterSet& ps, uint64_t seed, double std = 0.4) { ops::fill_normal(ps.values(), 0.0, std, seed, 0); }

SoftmaxAttention make_attention(ParameterSet& ps, int64_t d, int64_t heads, double attn_p, double out_p,
                                DType dtype = DType::F64, uint64_t seed = 5) {
  SoftmaxAttentionConfig c;
  c.hidden = d;
  c.heads = heads;
  c.attn_dropout = attn_p;
  c.output_dropout = out_p;
  c.bias = true;
  c.init_std = 0.02;
  c.output_init_std = 0.01;
  SoftmaxAttention m(ps, kAttn, c);
  ps.materialize(dtype, Device::cpu());
  ps.initialize(1);
  randomize(ps, seed);
  ps.zero_grad();
  return m;
}

BertLayerConfig layer_config(int64_t d, int64_t heads, int64_t inter, double hidden_p, double attn_p) {
  BertLayerConfig c;
  c.hidden = d;
  c.heads = heads;
  c.intermediate = inter;
  c.hidden_dropout = hidden_p;
  c.attn_dropout = attn_p;
  c.ln_eps = 1e-12;
  c.act = parse_activation("gelu", "hidden_act");
  c.init_std = 0.02;
  c.output_init_std = 0.02 / std::sqrt(2.0 * 24);
  return c;
}

BertLayer make_layer(ParameterSet& ps, int64_t d, int64_t heads, int64_t inter, double hidden_p, double attn_p,
                     DType dtype = DType::F64, uint64_t seed = 9) {
  BertLayer m(ps, "encoder.layer.0", layer_config(d, heads, inter, hidden_p, attn_p));
  ps.materialize(dtype, Device::cpu());
  ps.initialize(1);
  randomize(ps, seed);
  ps.zero_grad();
  return m;
}

// The key bias adds q·b_k to every score of a query row, which the softmax cancels: its true gradient is 0,
// so a relative finite-difference error is meaningless there. It is checked separately (check_inert_key_bias).
bool is_key_bias(const std::string& name) {
  const std::string suffix = ".key.bias";
  return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::vector<GradVar> param_vars(ParameterSet& ps) {
  std::vector<GradVar> vars;
  for (auto& p : ps.all())
    if (!is_key_bias(p.name)) vars.push_back({p.name, p.value, p.grad});
  return vars;
}

// Norm of (a - b) relative to `scale` (a tensor of the same module whose gradient is not identically zero).
double scaled_error(const Tensor& a, const Tensor& b, const Tensor& scale) {
  const auto av = a.contiguous().to_vector<double>(), bv = b.contiguous().to_vector<double>();
  const auto sv = scale.contiguous().to_vector<double>();
  double d2 = 0.0, s2 = 0.0;
  for (size_t i = 0; i < av.size(); ++i) d2 += (av[i] - bv[i]) * (av[i] - bv[i]);
  for (double t : sv) s2 += t * t;
  return std::sqrt(d2) / std::max(std::sqrt(s2), 1e-300);
}

// Shifting the key bias leaves the output unchanged, and its analytic gradient is roundoff-small next to
// the key weight's.
template <typename M>
void check_inert_key_bias(M& m, ParameterSet& ps, const std::string& attention, const Tensor& x, const Tensor* mask,
                          bool training) {
  Parameter& kb = ps.at(attention + ".key.bias");
  Parameter& kw = ps.at(attention + ".key.weight");
  Context c0 = make_ctx(training);
  const Tensor y0 = m.forward(x, mask, c0);
  ps.zero_grad();
  m.backward(random_tensor(y0.shape(), 99));
  EXPECT_LT(scaled_error(kb.grad, Tensor::zeros(kb.shape, DType::F64), kw.grad), 1e-12);
  const Tensor saved = kb.value.clone();
  ops::axpy(1.0, random_tensor(kb.shape, 98), kb.value);
  Context c1 = make_ctx(training);
  EXPECT_LT(relative_error(m.forward(x, mask, c1), y0), 1e-13) << "the key bias changed the output";
  kb.value.copy_(saved);
}

template <typename M>
void gradcheck_module(M& m, ParameterSet& ps, const Tensor& x, const Tensor* mask, bool training,
                      const std::string& attention) {
  check_inert_key_bias(m, ps, attention, x, mask, training);
  Tensor dx = Tensor::zeros(x.shape(), x.dtype());
  std::vector<GradVar> vars = param_vars(ps);
  EXPECT_EQ(vars.size() + 1, ps.all().size());
  vars.push_back({"input", x, dx});
  // A fresh generator with the same seed per call keeps the dropout masks fixed across perturbations.
  auto forward = [&] {
    Context ctx = make_ctx(training);
    return m.forward(x, mask, ctx);
  };
  auto backward = [&](const Tensor& dout) { dx.copy_(m.backward(dout)); };
  check_gradients(forward, backward, vars);
}

// ---- host-loop reference ------------------------------------------------------------------------------

using Vec = std::vector<double>;

Vec host(const ParameterSet& ps, const std::string& name) {
  const Parameter* p = ps.find(name);
  EXPECT_NE(p, nullptr) << "missing parameter " << name;
  return p ? p->value.to_vector<double>() : Vec{};
}

// y = x Wᵀ + b, x [rows, in], W [out, in].
Vec host_linear(const Vec& x, int64_t rows, int64_t in, const Vec& w, const Vec& b, int64_t out) {
  Vec y(size_t(rows * out));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double s = b[size_t(o)];
      for (int64_t i = 0; i < in; ++i) s += x[size_t(r * in + i)] * w[size_t(o * in + i)];
      y[size_t(r * out + o)] = s;
    }
  return y;
}

Vec host_projection(const Vec& x, int64_t rows, int64_t in, int64_t out, const ParameterSet& ps,
                    const std::string& name) {
  return host_linear(x, rows, in, host(ps, name + ".weight"), host(ps, name + ".bias"), out);
}

// bert_reference.py `_attention`: masked keys get -inf, a query with no valid key gets a zero row (where
// torch would give NaN). prob_mask [B·H, N, N] multiplies the probabilities (dropout) when given.
Vec host_attention(const Vec& x, int64_t B, int64_t N, int64_t d, int64_t H, const Vec* mask, const ParameterSet& ps,
                   const std::string& prefix, const Vec* prob_mask = nullptr) {
  const int64_t e = d / H, rows = B * N;
  const Vec q = host_projection(x, rows, d, d, ps, prefix + ".query");
  const Vec k = host_projection(x, rows, d, d, ps, prefix + ".key");
  const Vec v = host_projection(x, rows, d, d, ps, prefix + ".value");
  Vec ctx(size_t(rows * d), 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < N; ++i) {
        Vec s(static_cast<size_t>(N));
        double mx = -INFINITY;
        for (int64_t j = 0; j < N; ++j) {
          double dot = 0.0;
          for (int64_t c = 0; c < e; ++c)
            dot += q[size_t((b * N + i) * d + h * e + c)] * k[size_t((b * N + j) * d + h * e + c)];
          const bool valid = !mask || (*mask)[size_t(b * N + j)] != 0.0;
          s[size_t(j)] = valid ? dot / std::sqrt(double(e)) : -INFINITY;
          mx = std::max(mx, s[size_t(j)]);
        }
        if (mx == -INFINITY) continue;
        double sum = 0.0;
        for (int64_t j = 0; j < N; ++j) sum += (s[size_t(j)] = std::exp(s[size_t(j)] - mx));
        for (int64_t j = 0; j < N; ++j) {
          double p = s[size_t(j)] / sum;
          if (prob_mask) p *= (*prob_mask)[size_t(((b * H + h) * N + i) * N + j)];
          for (int64_t c = 0; c < e; ++c)
            ctx[size_t((b * N + i) * d + h * e + c)] += p * v[size_t((b * N + j) * d + h * e + c)];
        }
      }
  return host_projection(ctx, rows, d, d, ps, prefix + ".output");
}

// F.layer_norm: biased variance, eps inside the sqrt.
Vec host_layer_norm(const Vec& x, int64_t rows, int64_t d, const Vec& g, const Vec& bias, double eps) {
  Vec y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double mean = 0.0, var = 0.0;
    for (int64_t c = 0; c < d; ++c) mean += x[size_t(r * d + c)];
    mean /= double(d);
    for (int64_t c = 0; c < d; ++c) var += (x[size_t(r * d + c)] - mean) * (x[size_t(r * d + c)] - mean);
    var /= double(d);
    for (int64_t c = 0; c < d; ++c)
      y[size_t(r * d + c)] = (x[size_t(r * d + c)] - mean) / std::sqrt(var + eps) * g[size_t(c)] + bias[size_t(c)];
  }
  return y;
}

// bert_reference.py `encoder`, one layer, exact GELU.
Vec host_bert_layer(const Vec& x, int64_t B, int64_t N, int64_t d, int64_t H, int64_t I, const Vec* mask,
                    const ParameterSet& ps, const std::string& p, double eps) {
  const int64_t rows = B * N;
  const Vec h1 =
      host_layer_norm(x, rows, d, host(ps, p + ".attention_norm.weight"), host(ps, p + ".attention_norm.bias"), eps);
  const Vec a = host_attention(h1, B, N, d, H, mask, ps, p + ".attention");
  Vec x1(x.size());
  for (size_t i = 0; i < x.size(); ++i) x1[i] = x[i] + a[i];
  const Vec h2 = host_layer_norm(x1, rows, d, host(ps, p + ".ffn_norm.weight"), host(ps, p + ".ffn_norm.bias"), eps);
  Vec u = host_projection(h2, rows, d, I, ps, p + ".ffn.dense_in");
  for (double& t : u) t = 0.5 * t * (1.0 + std::erf(t / std::sqrt(2.0)));
  const Vec f = host_projection(u, rows, I, d, ps, p + ".ffn.dense_out");
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x1[i] + f[i];
  return y;
}

double host_relative_error(const Vec& a, const Vec& b) {
  double d2 = 0.0, b2 = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    d2 += (a[i] - b[i]) * (a[i] - b[i]);
    b2 += b[i] * b[i];
  }
  return std::sqrt(d2) / std::max(std::sqrt(b2), 1e-300);
}

// ---- shared checks ---------------------------------------------------------------------------------------

// Appending pad keys (mask 0) must leave the real rows' outputs, the input gradient of the real rows and
// every parameter gradient unchanged when the output gradient is zero on the appended rows.
template <typename M>
void check_padding_invariance(M& m, ParameterSet& ps, int64_t B, int64_t N, int64_t d,
                              const std::vector<int64_t>& lengths, int64_t extra) {
  const Tensor x = random_tensor({B, N, d}, 31);
  const Tensor mask = make_mask(lengths, N);
  const Tensor dy = random_tensor({B, N, d}, 32);
  Context ctx = make_ctx(false);
  ps.zero_grad();
  const Tensor y = m.forward(x, &mask, ctx);
  const Tensor dx = m.backward(dy);
  const Tensor grads = ps.grads().clone();

  Tensor x_ext = random_tensor({B, N + extra, d}, 33, 3.0);
  x_ext.slice(1, 0, N).copy_(x);
  const Tensor mask_ext = make_mask(lengths, N + extra);
  Tensor dy_ext = Tensor::zeros({B, N + extra, d}, DType::F64);
  dy_ext.slice(1, 0, N).copy_(dy);
  ps.zero_grad();
  Context ctx2 = make_ctx(false);
  const Tensor y_ext = m.forward(x_ext, &mask_ext, ctx2);
  const Tensor dx_ext = m.backward(dy_ext);

  EXPECT_LT(relative_error(y_ext.slice(1, 0, N), y), 1e-13);
  EXPECT_LT(relative_error(dx_ext.slice(1, 0, N), dx), 1e-13);
  EXPECT_EQ(ops::max_abs(dx_ext.slice(1, N, N + extra)), 0.0) << "pad rows received a gradient";
  for (const auto& p : ps.all()) {
    const Tensor g0 = grads.view({-1}).slice(0, p.arena_offset, p.arena_offset + p.value.numel());
    if (is_key_bias(p.name)) continue;  // zero up to roundoff in both (check_inert_key_bias)
    EXPECT_LT(relative_error(p.grad, g0), 1e-13) << p.name;
  }
}

// Runs forward and backward in f64 and in f32 with the same parameters and compares output, input gradient
// and every parameter gradient.
template <typename Make>
void check_f32_matches_f64(Make make, int64_t B, int64_t N, int64_t d, const std::vector<int64_t>& lengths) {
  ParameterSet ps64, ps32;
  auto m64 = make(ps64, DType::F64);
  auto m32 = make(ps32, DType::F32);
  ps32.values().copy_(ps64.values());
  const Tensor x = random_tensor({B, N, d}, 41);
  const Tensor dy = random_tensor({B, N, d}, 42);
  const Tensor mask = make_mask(lengths, N);
  const Tensor mask32 = mask.to(DType::F32);
  Context c64 = make_ctx(false), c32 = make_ctx(false);
  const Tensor y64 = m64.forward(x, &mask, c64);
  const Tensor y32 = m32.forward(x.to(DType::F32), &mask32, c32);
  EXPECT_EQ(y32.dtype(), DType::F32);
  EXPECT_LT(relative_error(y32, y64), 1e-5);
  const Tensor dx64 = m64.backward(dy);
  const Tensor dx32 = m32.backward(dy.to(DType::F32));
  EXPECT_LT(relative_error(dx32, dx64), 1e-5);
  for (const auto& p : ps64.all()) {
    const Tensor& g32 = ps32.at(p.name).grad;
    if (is_key_bias(p.name)) {
      // Zero up to roundoff: measured against the key weight's gradient instead.
      const std::string kw = p.name.substr(0, p.name.size() - 4) + "weight";
      EXPECT_LT(scaled_error(g32, p.grad, ps64.at(kw).grad), 1e-5) << p.name;
    } else {
      EXPECT_LT(relative_error(g32, p.grad), 1e-5) << p.name;
    }
  }
}

}  // namespace

// ==== SoftmaxAttention ====================================================================================

TEST(SoftmaxAttention, ParameterNamesAndShapes) {
  ParameterSet ps;
  SoftmaxAttentionConfig c;
  c.hidden = 64;
  c.heads = 4;
  c.init_std = 0.02;
  c.output_init_std = 0.004;
  SoftmaxAttention m(ps, "encoder.layer.3.attention", c);
  std::vector<std::pair<std::string, Shape>> got;
  for (const auto& p : ps.all()) got.emplace_back(p.name, p.shape);
  const std::string pre = "encoder.layer.3.attention.";
  const std::vector<std::pair<std::string, Shape>> want = {
      {pre + "query.weight", {64, 64}},  {pre + "query.bias", {64}},       {pre + "key.weight", {64, 64}},
      {pre + "key.bias", {64}},          {pre + "value.weight", {64, 64}}, {pre + "value.bias", {64}},
      {pre + "output.weight", {64, 64}}, {pre + "output.bias", {64}}};
  EXPECT_EQ(got, want);
  EXPECT_DOUBLE_EQ(ps.at(pre + "query.weight").init.a, 0.02);
  EXPECT_DOUBLE_EQ(ps.at(pre + "output.weight").init.a, 0.004);
  EXPECT_EQ(ps.at(pre + "output.weight").init.kind, Init::Normal);
  EXPECT_EQ(ps.at(pre + "key.bias").init.kind, Init::Constant);

  ParameterSet no_bias;
  c.bias = false;
  SoftmaxAttention m2(no_bias, "a", c);
  EXPECT_EQ(no_bias.all().size(), 4u);

  ParameterSet bad;
  c.heads = 5;
  EXPECT_THROW({ SoftmaxAttention bad_heads(bad, "a", c); }, Error);
}

TEST(SoftmaxAttention, MatchesHostLoop) {
  const int64_t B = 3, N = 6, d = 12;
  for (int64_t H : {1, 2, 4}) {
    SCOPED_TRACE("heads " + std::to_string(H));
    ParameterSet ps;
    // Dropout configured but eval mode: nothing may be dropped (the reference's eval-time attention
    // dropout is deliberately not copied).
    SoftmaxAttention m = make_attention(ps, d, H, 0.3, 0.3);
    const Tensor x = random_tensor({B, N, d}, 11);
    const Tensor mask = make_mask({6, 4, 0}, N);  // full, padded, fully masked
    const Vec mv = mask.to_vector<double>();
    Context ctx = make_ctx(false);
    const Tensor y = m.forward(x, &mask, ctx);
    EXPECT_EQ(y.shape(), (Shape{B, N, d}));
    const Vec want = host_attention(x.to_vector<double>(), B, N, d, H, &mv, ps, kAttn);
    EXPECT_LT(host_relative_error(y.to_vector<double>(), want), 1e-13);
    // The fully masked sequence attends to nothing: its output is the output bias.
    const Vec bias = host(ps, kAttn + ".output.bias");
    const Vec yv = y.to_vector<double>();
    for (int64_t i = 0; i < N; ++i)
      for (int64_t c = 0; c < d; ++c) EXPECT_DOUBLE_EQ(yv[size_t((2 * N + i) * d + c)], bias[size_t(c)]);

    Context ctx2 = make_ctx(false);
    const Tensor y_nomask = m.forward(x, nullptr, ctx2);
    const Vec want_nomask = host_attention(x.to_vector<double>(), B, N, d, H, nullptr, ps, kAttn);
    EXPECT_LT(host_relative_error(y_nomask.to_vector<double>(), want_nomask), 1e-13);
  }
}

// The attention-dropout mask of element (b·H + h, i, j) is the Philox draw at flat index ((b·H+h)·N+i)·N+j
// of the first reservation, which a fused kernel must reproduce.
TEST(SoftmaxAttention, DropoutMaskLayoutAndTrainingOnly) {
  const int64_t B = 2, N = 7, d = 8, H = 2;
  const double p = 0.25;
  ParameterSet ps;
  SoftmaxAttention m = make_attention(ps, d, H, p, 0.0);
  const Tensor x = random_tensor({B, N, d}, 12);
  const Tensor mask = make_mask({7, 5}, N);
  const Vec mv = mask.to_vector<double>();
  Context ctx = make_ctx(true, 1234);
  const Tensor y = m.forward(x, &mask, ctx);
  const Vec keep = ops::dropout(Tensor::full({B * H, N, N}, 1.0, DType::F64), p, 1234, 0).to_vector<double>();
  const Vec want = host_attention(x.to_vector<double>(), B, N, d, H, &mv, ps, kAttn, &keep);
  EXPECT_LT(host_relative_error(y.to_vector<double>(), want), 1e-13);
  EXPECT_GT(ctx.rng.offset(), 0u) << "training mode must reserve dropout draws";

  Context same = make_ctx(true, 1234);
  EXPECT_EQ(m.forward(x, &mask, same).to_vector<double>(), y.to_vector<double>());
  Context eval = make_ctx(false, 1234);
  const Tensor y_eval = m.forward(x, &mask, eval);
  EXPECT_GT(relative_error(y, y_eval), 1e-3);
  EXPECT_EQ(eval.rng.offset(), 0u) << "eval mode must not consume random numbers";
}

TEST(SoftmaxAttention, GradientsMatchFiniteDifferences) {
  const int64_t B = 3, N = 5, d = 8;
  for (int64_t H : {1, 2, 4})
    for (bool masked : {false, true}) {
      SCOPED_TRACE("heads " + std::to_string(H) + (masked ? " masked" : " unmasked"));
      ParameterSet ps;
      SoftmaxAttention m = make_attention(ps, d, H, 0.0, 0.0);
      const Tensor x = random_tensor({B, N, d}, 21);
      const Tensor mask = make_mask({5, 3, 0}, N);
      gradcheck_module(m, ps, x, masked ? &mask : nullptr, false, kAttn);
    }
}

TEST(SoftmaxAttention, GradientsWithDropout) {
  const int64_t B = 2, N = 6, d = 8;
  for (int64_t H : {1, 2, 4}) {
    SCOPED_TRACE("heads " + std::to_string(H));
    ParameterSet ps;
    SoftmaxAttention m = make_attention(ps, d, H, 0.1, 0.1);
    const Tensor x = random_tensor({B, N, d}, 22);
    const Tensor mask = make_mask({6, 4}, N);
    gradcheck_module(m, ps, x, &mask, true, kAttn);
  }
}

TEST(SoftmaxAttention, PaddingInvariance) {
  for (int64_t H : {1, 4}) {
    SCOPED_TRACE("heads " + std::to_string(H));
    ParameterSet ps;
    SoftmaxAttention m = make_attention(ps, 8, H, 0.1, 0.1);
    check_padding_invariance(m, ps, 2, 5, 8, {5, 3}, 4);
  }
}

TEST(SoftmaxAttention, F32MatchesF64) {
  check_f32_matches_f64([](ParameterSet& ps, DType dt) { return make_attention(ps, 32, 4, 0.0, 0.0, dt); }, 2, 16, 32,
                        {16, 11});
}

TEST(SoftmaxAttention, RejectsBadInputs) {
  ParameterSet ps;
  SoftmaxAttention m = make_attention(ps, 8, 2, 0.0, 0.0);
  Context ctx = make_ctx(false);
  const Tensor x = random_tensor({2, 5, 8}, 1);
  const Tensor bad_width = random_tensor({2, 5, 6}, 1);
  EXPECT_THROW(m.forward(bad_width, nullptr, ctx), Error);
  const Tensor bad_mask = make_mask({5, 5, 5}, 5);
  EXPECT_THROW(m.forward(x, &bad_mask, ctx), Error);
  const Tensor f32_mask = make_mask({5, 5}, 5, DType::F32);
  EXPECT_THROW(m.forward(x, &f32_mask, ctx), Error);
  SoftmaxAttention fresh = m;
  fresh.release();
  EXPECT_THROW(fresh.backward(x), Error);
}

// ==== BertLayer ===========================================================================================

TEST(BertLayer, ParameterNamesShapesAndInit) {
  const int64_t d = 64, I = 256;
  ParameterSet ps;
  BertLayerConfig c = layer_config(d, 4, I, 0.1, 0.1);
  BertLayer m(ps, "encoder.layer.0", c);
  std::vector<std::pair<std::string, Shape>> got;
  for (const auto& p : ps.all()) got.emplace_back(p.name, p.shape);
  const std::string pre = "encoder.layer.0.";
  std::vector<std::pair<std::string, Shape>> want = {{pre + "attention_norm.weight", {d}},
                                                     {pre + "attention_norm.bias", {d}}};
  for (const char* proj : {"query", "key", "value", "output"}) {
    want.push_back({pre + "attention." + proj + ".weight", {d, d}});
    want.push_back({pre + "attention." + proj + ".bias", {d}});
  }
  want.push_back({pre + "ffn_norm.weight", {d}});
  want.push_back({pre + "ffn_norm.bias", {d}});
  want.push_back({pre + "ffn.dense_in.weight", {I, d}});
  want.push_back({pre + "ffn.dense_in.bias", {I}});
  want.push_back({pre + "ffn.dense_out.weight", {d, I}});
  want.push_back({pre + "ffn.dense_out.bias", {d}});
  EXPECT_EQ(got, want);
  EXPECT_EQ(ps.numel(), 4 * (d * d + d) + 4 * d + 2 * I * d + I + d);

  ps.materialize(DType::F64, Device::cpu());
  ps.initialize(3);
  auto std_of = [&](const std::string& name) {
    const Vec v = host(ps, name);
    double s2 = 0.0;
    for (double t : v) s2 += t * t;
    return std::sqrt(s2 / double(v.size()));
  };
  for (const char* w :
       {"attention.query.weight", "attention.key.weight", "attention.value.weight", "ffn.dense_in.weight"})
    EXPECT_NEAR(std_of(pre + w), 0.02, 0.002) << w;
  for (const char* w : {"attention.output.weight", "ffn.dense_out.weight"})
    EXPECT_NEAR(std_of(pre + w), c.output_init_std, 0.1 * c.output_init_std) << w;
  for (const auto& p : ps.all()) {
    if (p.kind == ParamKind::Bias) {
      EXPECT_EQ(ops::max_abs(p.value), 0.0) << p.name;
    } else if (p.kind == ParamKind::Gain) {
      EXPECT_EQ(ops::sum(p.value), double(d)) << p.name;
    }
  }
}

TEST(BertLayer, MatchesHostLoop) {
  const int64_t B = 3, N = 6, d = 12, I = 20;
  for (int64_t H : {1, 3, 4}) {
    SCOPED_TRACE("heads " + std::to_string(H));
    ParameterSet ps;
    BertLayer m = make_layer(ps, d, H, I, 0.3, 0.3);  // eval mode: no dropout anywhere
    const Tensor x = random_tensor({B, N, d}, 13);
    const Tensor mask = make_mask({6, 2, 0}, N);
    const Vec mv = mask.to_vector<double>();
    Context ctx = make_ctx(false);
    const Tensor y = m.forward(x, &mask, ctx);
    const Vec want = host_bert_layer(x.to_vector<double>(), B, N, d, H, I, &mv, ps, "encoder.layer.0", 1e-12);
    EXPECT_LT(host_relative_error(y.to_vector<double>(), want), 1e-13);

    // No mask is the same as an all-ones mask.
    const Tensor ones = make_mask({N, N, N}, N);
    Context c1 = make_ctx(false), c2 = make_ctx(false);
    EXPECT_EQ(m.forward(x, nullptr, c1).to_vector<double>(), m.forward(x, &ones, c2).to_vector<double>());
  }
}

TEST(BertLayer, GradientsMatchFiniteDifferences) {
  const int64_t B = 2, N = 5, d = 8, I = 16;
  for (int64_t H : {1, 2, 4})
    for (bool masked : {false, true}) {
      SCOPED_TRACE("heads " + std::to_string(H) + (masked ? " masked" : " unmasked"));
      ParameterSet ps;
      BertLayer m = make_layer(ps, d, H, I, 0.0, 0.0);
      const Tensor x = random_tensor({B, N, d}, 23);
      const Tensor mask = make_mask({5, 3}, N);
      gradcheck_module(m, ps, x, masked ? &mask : nullptr, false, kAttn);
    }
}

TEST(BertLayer, GradientsWithDropout) {
  const int64_t B = 2, N = 5, d = 8, I = 16;
  for (int64_t H : {1, 2, 4}) {
    SCOPED_TRACE("heads " + std::to_string(H));
    ParameterSet ps;
    BertLayer m = make_layer(ps, d, H, I, 0.1, 0.1);
    const Tensor x = random_tensor({B, N, d}, 24);
    const Tensor mask = make_mask({5, 3}, N);
    gradcheck_module(m, ps, x, &mask, true, kAttn);
  }
}

TEST(BertLayer, DropoutOnlyInTraining) {
  ParameterSet ps;
  BertLayer m = make_layer(ps, 8, 2, 16, 0.1, 0.1);
  const Tensor x = random_tensor({2, 5, 8}, 25);
  Context eval = make_ctx(false), train = make_ctx(true), train2 = make_ctx(true);
  const Tensor y_eval = m.forward(x, nullptr, eval);
  const Tensor y_train = m.forward(x, nullptr, train);
  EXPECT_EQ(eval.rng.offset(), 0u);
  EXPECT_GT(relative_error(y_train, y_eval), 1e-3);
  EXPECT_EQ(m.forward(x, nullptr, train2).to_vector<double>(), y_train.to_vector<double>());

  ParameterSet ps0;
  BertLayer m0 = make_layer(ps0, 8, 2, 16, 0.0, 0.0);
  Context e0 = make_ctx(false), t0 = make_ctx(true);
  EXPECT_EQ(m0.forward(x, nullptr, e0).to_vector<double>(), m0.forward(x, nullptr, t0).to_vector<double>());
}

TEST(BertLayer, PaddingInvariance) {
  for (int64_t H : {1, 2}) {
    SCOPED_TRACE("heads " + std::to_string(H));
    ParameterSet ps;
    BertLayer m = make_layer(ps, 8, H, 16, 0.1, 0.1);
    check_padding_invariance(m, ps, 2, 5, 8, {5, 2}, 3);
  }
}

TEST(BertLayer, F32MatchesF64) {
  check_f32_matches_f64([](ParameterSet& ps, DType dt) { return make_layer(ps, 32, 4, 64, 0.0, 0.0, dt); }, 2, 16, 32,
                        {16, 9});
}
