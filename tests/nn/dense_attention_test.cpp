// DenseAttention and RelPE: finite-difference gradients, linear vs quadratic agreement, every chunked kernel
// against a dense masked computation written with plain loops, RelPE against its closed form, config errors.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backend/ops.h"
#include "gradcheck.h"
#include "nn/dense_attention.h"
#include "nn/relpe.h"

using namespace dense;
using namespace dense::nn;
using dense::testing::check_gradients;
using dense::testing::random_tensor;
using dense::testing::relative_error;

namespace {

const char* kPrefix = "encoder.layer.0.attention";

// One attention layer with its own parameters (and RelPE when asked for).
struct Harness {
  ParameterSet params;
  std::unique_ptr<RelPE> relpe;
  DenseAttention attn;

  Harness(const DenseAttentionConfig& cfg, RelPEType type, DType dtype = DType::F64, double init_std = 0.5,
          uint64_t seed = 7, int64_t max_positions = 64) {
    if (type != RelPEType::None)
      relpe = std::make_unique<RelPE>(type, max_positions, cfg.hidden / cfg.heads, cfg.heads, dtype, Device::cpu());
    attn = DenseAttention(params, kPrefix, cfg, relpe.get(), init_std);
    params.materialize(dtype, Device::cpu());
    params.initialize(seed);
  }
  Parameter& wq() { return params.at(std::string(kPrefix) + ".queries"); }
  Tensor forward(const Tensor& a, bool training = false, uint64_t seed = 42) {
    Context ctx;
    ctx.training = training;
    ctx.rng = Generator(seed, 0);
    return attn.forward(a, ctx);
  }
};

DenseAttentionConfig config(int64_t d, int64_t heads, LayerKind kind = LayerKind::Global,
                            AttentionComplexity complexity = AttentionComplexity::Auto, bool causal = false,
                            const std::string& scheme = "", int64_t window = 4, int64_t chunk = 4) {
  DenseAttentionConfig c;
  c.hidden = d;
  c.heads = heads;
  c.kind = kind;
  c.complexity = complexity;
  c.causal = causal;
  c.window = window;
  c.chunk_size = chunk;
  c.scheme = RelPEScheme::parse(scheme, "relpe_scheme");
  return c;
}

std::string describe(const DenseAttentionConfig& c, RelPEType t, int64_t n) {
  const char* kinds[] = {"global", "local", "shifted_local", "sliding_window"};
  const char* cx[] = {"linear", "quadratic", "auto"};
  return fmt::format("{} {} H={} N={} causal={} relpe={} scheme=x{}q{}k{}v{} dropout={} local_relpe={}",
                     kinds[int(c.kind)], cx[int(c.complexity)], c.heads, n, c.causal, relpe_type_name(t), c.scheme.x,
                     c.scheme.q, c.scheme.k, c.scheme.v, c.dropout, c.local_relpe);
}

// Finite differences of dA and dW_Q (f64).
void gradcheck(const DenseAttentionConfig& cfg, RelPEType type, int64_t n, bool training = false, int64_t batch = 2) {
  SCOPED_TRACE(describe(cfg, type, n));
  Harness hz(cfg, type);
  Tensor a = random_tensor({batch, n, cfg.hidden}, 99);
  Tensor da = Tensor::zeros(a.shape(), DType::F64);
  check_gradients([&] { return hz.forward(a, training); },
                  [&](const Tensor& dout) { da.copy_(hz.attn.backward(dout)); },
                  {{"A", a, da}, {"W_Q", hz.wq().value, hz.wq().grad}});
}

// ---- host formulas (plain loops, f64) ----------------------------------------------------------------

double host_frequency(RelPEType type, int64_t c, int64_t e) {
  const int64_t i = c % e;
  if (type == RelPEType::Rope) return std::pow(10000.0, -2.0 * double(i % (e / 2)) / double(e));
  return std::pow(10000.0, -double(i) / double(e));
}

// RelPE of rows [rows, d] in place, row r at position pos[r].
void host_relpe(std::vector<double>& x, int64_t rows, int64_t d, int64_t e, RelPEType type,
                const std::vector<int64_t>& pos) {
  if (type == RelPEType::None) return;
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<double> in(x.begin() + r * d, x.begin() + (r + 1) * d);
    for (int64_t c = 0; c < d; ++c) {
      const double ang = double(pos[size_t(r)]) * host_frequency(type, c, e);
      double y;
      if (type == RelPEType::Cosine) {
        y = in[size_t(c)] * std::cos(ang);
      } else if (type == RelPEType::CosMinusSin) {
        y = in[size_t(c)] * (std::cos(ang) - std::sin(ang));
      } else {
        const double rot = c < d / 2 ? -in[size_t(c + d / 2)] : in[size_t(c - d / 2)];
        y = in[size_t(c)] * std::cos(ang) + rot * std::sin(ang);
      }
      x[size_t(r * d + c)] = y;
    }
  }
}

// Y[i] = Σ_{j visible from i} (q_i · k_j) v_j per head, with Q = X Wᵀ and the RelPEs of the scheme.
std::vector<double> host_attention(const std::vector<double>& a, const std::vector<double>& w, int64_t B, int64_t N,
                                   int64_t d, int64_t H, RelPEType type, const RelPEScheme& s,
                                   const std::function<bool(int64_t, int64_t)>& visible,
                                   const std::function<int64_t(int64_t)>& position) {
  const int64_t e = d / H;
  std::vector<int64_t> pos(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) pos[size_t(i)] = position(i);
  std::vector<double> y(size_t(B * N * d), 0.0);
  for (int64_t b = 0; b < B; ++b) {
    std::vector<double> x(a.begin() + b * N * d, a.begin() + (b + 1) * N * d);
    if (s.x) host_relpe(x, N, d, e, type, pos);
    std::vector<double> q(size_t(N * d), 0.0);
    for (int64_t i = 0; i < N; ++i)
      for (int64_t o = 0; o < d; ++o)
        for (int64_t c = 0; c < d; ++c) q[size_t(i * d + o)] += x[size_t(i * d + c)] * w[size_t(o * d + c)];
    std::vector<double> k = x, v = x;
    if (s.q) host_relpe(q, N, d, e, type, pos);
    if (s.k) host_relpe(k, N, d, e, type, pos);
    if (s.v) host_relpe(v, N, d, e, type, pos);
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < N; ++i)
        for (int64_t j = 0; j < N; ++j) {
          if (!visible(i, j)) continue;
          double score = 0.0;
          for (int64_t t = 0; t < e; ++t) score += q[size_t(i * d + h * e + t)] * k[size_t(j * d + h * e + t)];
          for (int64_t t = 0; t < e; ++t)
            y[size_t((b * N + i) * d + h * e + t)] += score * v[size_t(j * d + h * e + t)];
        }
  }
  return y;
}

// Which keys a query sees, and the RelPE position of every row, for a layer of `kind` over N rows
// (the conventions of tests/reference/danet_reference.py).
struct Layout {
  std::function<bool(int64_t, int64_t)> visible;
  std::function<int64_t(int64_t)> position;
};

Layout layout_for(const DenseAttentionConfig& c, int64_t N) {
  const int64_t w = c.window, half = w / 2;
  const bool causal = c.causal;
  const auto order = [causal](int64_t i, int64_t j) { return !causal || j <= i; };
  switch (c.kind) {
    case LayerKind::Global: return {order, [](int64_t i) { return i; }};
    case LayerKind::Local:
      if (N <= w) return {order, [](int64_t i) { return i; }};
      return {[=](int64_t i, int64_t j) { return i / w == j / w && order(i, j); },
              [=](int64_t i) { return c.local_relpe ? i % w : i; }};
    case LayerKind::ShiftedLocal:
      if (N <= half) return {order, [](int64_t i) { return i; }};
      return {[=](int64_t i, int64_t j) { return (i + half) / w == (j + half) / w && order(i, j); },
              [=](int64_t i) { return c.local_relpe ? (i + half) % w : i + half; }};
    case LayerKind::SlidingWindow:
      return {[=](int64_t i, int64_t j) { return j <= i && i - j < w; }, [](int64_t i) { return i; }};
  }
  return {};
}

void expect_matches_masked_reference(const DenseAttentionConfig& cfg, RelPEType type, int64_t n, int64_t batch = 2) {
  SCOPED_TRACE(describe(cfg, type, n));
  Harness hz(cfg, type);
  const Tensor a = random_tensor({batch, n, cfg.hidden}, 5);
  const Tensor y = hz.forward(a);
  const Layout l = layout_for(cfg, n);
  const RelPEScheme s = type == RelPEType::None ? RelPEScheme{} : cfg.scheme;
  const auto ref = host_attention(a.to_vector<double>(), hz.wq().value.to_vector<double>(), batch, n, cfg.hidden,
                                  cfg.heads, type, s, l.visible, l.position);
  EXPECT_LT(relative_error(y, Tensor::from_vector(ref, y.shape(), DType::F64)), 1e-12);
}

}  // namespace

// ---- gradients (f64 finite differences) -----------------------------------------------------------------

TEST(DenseAttentionGrad, GlobalLinearAndQuadraticEveryHeadCount) {
  for (const auto cx : {AttentionComplexity::Linear, AttentionComplexity::Quadratic, AttentionComplexity::Auto})
    for (const int64_t heads : {1, 2, 4}) gradcheck(config(8, heads, LayerKind::Global, cx), RelPEType::None, 6);
}

TEST(DenseAttentionGrad, RelPETypesAndSchemes) {
  for (const auto type : {RelPEType::Cosine, RelPEType::CosMinusSin, RelPEType::Rope})
    for (const char* scheme : {"qkv", "q,k", "q,k,v", "v", "qkv,k"})
      for (const auto cx : {AttentionComplexity::Linear, AttentionComplexity::Quadratic})
        gradcheck(config(8, 2, LayerKind::Global, cx, false, scheme), type, 6);
}

TEST(DenseAttentionGrad, LocalWindows) {
  // H = 1: e = 8 > w = 4, so the windows take the quadratic path; H = 2: e = 4 = w, linear.
  for (const int64_t heads : {1, 2})
    for (const int64_t n : {12, 10, 3}) {
      gradcheck(config(8, heads, LayerKind::Local), RelPEType::None, n);
      gradcheck(config(8, heads, LayerKind::Local, AttentionComplexity::Auto, false, "qkv"), RelPEType::Cosine, n);
      gradcheck(config(8, heads, LayerKind::Local, AttentionComplexity::Auto, false, "q,k"), RelPEType::Rope, n);
    }
}

TEST(DenseAttentionGrad, ShiftedLocalWindows) {
  for (const int64_t heads : {1, 2})
    for (const int64_t n : {12, 10, 3, 2}) {
      gradcheck(config(8, heads, LayerKind::ShiftedLocal), RelPEType::None, n);
      gradcheck(config(8, heads, LayerKind::ShiftedLocal, AttentionComplexity::Auto, false, "qkv"), RelPEType::Cosine,
                n);
      gradcheck(config(8, heads, LayerKind::ShiftedLocal, AttentionComplexity::Auto, false, "q,k,v"), RelPEType::Rope,
                n);
    }
}

TEST(DenseAttentionGrad, SlidingWindowCausal) {
  for (const int64_t heads : {1, 2})
    for (const int64_t n : {12, 10, 4}) {
      gradcheck(config(8, heads, LayerKind::SlidingWindow, AttentionComplexity::Auto, true), RelPEType::None, n);
      gradcheck(config(8, heads, LayerKind::SlidingWindow, AttentionComplexity::Auto, true, "q,k"), RelPEType::Rope, n);
    }
}

TEST(DenseAttentionGrad, CausalGlobalChunked) {
  // chunk 4: N = 12 (three full chunks), N = 10 (a partial last chunk), N = 3 (one chunk: tril(QKᵀ)V).
  for (const int64_t heads : {1, 2, 4})
    for (const int64_t n : {12, 10, 3}) {
      gradcheck(config(8, heads, LayerKind::Global, AttentionComplexity::Auto, true), RelPEType::None, n);
      gradcheck(config(8, heads, LayerKind::Global, AttentionComplexity::Auto, true, "qkv"), RelPEType::Cosine, n);
    }
}

TEST(DenseAttentionGrad, CausalLocalAndShiftedLocal) {
  for (const auto kind : {LayerKind::Local, LayerKind::ShiftedLocal})
    for (const int64_t n : {12, 10})
      gradcheck(config(8, 2, kind, AttentionComplexity::Auto, true, "q,k"), RelPEType::Rope, n);
}

TEST(DenseAttentionGrad, DropoutInTraining) {
  const auto with_dropout = [](DenseAttentionConfig c) {
    c.dropout = 0.2;
    return c;
  };
  gradcheck(with_dropout(config(8, 2, LayerKind::Global, AttentionComplexity::Linear)), RelPEType::None, 6, true);
  gradcheck(with_dropout(config(8, 2, LayerKind::Global, AttentionComplexity::Quadratic, false, "qkv")),
            RelPEType::Cosine, 6, true);
  gradcheck(with_dropout(config(8, 2, LayerKind::Local, AttentionComplexity::Auto, false, "q,k")), RelPEType::Rope, 10,
            true);
  gradcheck(with_dropout(config(8, 2, LayerKind::ShiftedLocal)), RelPEType::None, 10, true);
  gradcheck(with_dropout(config(8, 2, LayerKind::SlidingWindow, AttentionComplexity::Auto, true)), RelPEType::None, 10,
            true);
  gradcheck(with_dropout(config(8, 2, LayerKind::Global, AttentionComplexity::Auto, true)), RelPEType::None, 10, true);
}

TEST(DenseAttention, DropoutIsActiveOnlyInTraining) {
  DenseAttentionConfig c = config(8, 2);
  c.dropout = 0.2;
  Harness hz(c, RelPEType::None);
  const Tensor a = random_tensor({2, 6, 8}, 3);
  const Tensor eval = hz.forward(a, false);
  const Tensor train = hz.forward(a, true, 1);
  EXPECT_GT(relative_error(train, eval), 1e-3);
  EXPECT_EQ(relative_error(hz.forward(a, true, 1), train), 0.0);  // same seed, same mask
  EXPECT_LT(relative_error(hz.forward(a, false), eval), 1e-15);
}

TEST(DenseAttention, QueriesGradientAccumulates) {
  Harness hz(config(8, 2), RelPEType::None);
  const Tensor a = random_tensor({2, 6, 8}, 3);
  const Tensor dy = random_tensor({2, 6, 8}, 4);
  hz.forward(a);
  hz.attn.backward(dy);
  const Tensor once = hz.wq().grad.clone();
  hz.attn.backward(dy);
  EXPECT_LT(relative_error(hz.wq().grad, ops::scale(once, 2.0)), 1e-14);
  EXPECT_EQ(hz.wq().shape, (Shape{8, 8}));
}

// ---- linear vs quadratic (f32) ------------------------------------------------------------------------------

TEST(DenseAttention, LinearAndQuadraticAgreeInF32) {
  for (const int64_t heads : {1, 2, 4, 8}) {
    SCOPED_TRACE(fmt::format("H = {}", heads));
    Harness lin(config(32, heads, LayerKind::Global, AttentionComplexity::Linear), RelPEType::None, DType::F32, 0.2);
    Harness quad(config(32, heads, LayerKind::Global, AttentionComplexity::Quadratic), RelPEType::None, DType::F32,
                 0.2);
    const Tensor a = random_tensor({2, 24, 32}, 11, 1.0, DType::F32);
    const Tensor dy = random_tensor({2, 24, 32}, 12, 1.0, DType::F32);
    const Tensor yl = lin.forward(a), yq = quad.forward(a);
    EXPECT_LT(relative_error(yl, yq), 1e-5);
    const Tensor dal = lin.attn.backward(dy), daq = quad.attn.backward(dy);
    EXPECT_LT(relative_error(dal, daq), 1e-5);
    EXPECT_LT(relative_error(lin.wq().grad, quad.wq().grad), 1e-5);
  }
}

// ---- chunked kernels vs a dense masked computation (f64) ----------------------------------------------------

TEST(DenseAttentionMasked, GlobalAndCausalGlobal) {
  for (const bool causal : {false, true})
    for (const int64_t n : {3, 4, 10, 12}) {
      expect_matches_masked_reference(config(8, 2, LayerKind::Global, AttentionComplexity::Auto, causal),
                                      RelPEType::None, n);
      expect_matches_masked_reference(config(8, 2, LayerKind::Global, AttentionComplexity::Auto, causal, "qkv"),
                                      RelPEType::Cosine, n);
      expect_matches_masked_reference(config(8, 2, LayerKind::Global, AttentionComplexity::Auto, causal, "q,k"),
                                      RelPEType::Rope, n);
    }
}

TEST(DenseAttentionMasked, LocalAndShiftedLocal) {
  for (const auto kind : {LayerKind::Local, LayerKind::ShiftedLocal})
    for (const bool causal : {false, true})
      for (const bool local_relpe : {true, false})
        for (const int64_t n : {2, 3, 4, 5, 10, 12}) {
          for (const int64_t heads : {1, 2}) {
            DenseAttentionConfig c = config(8, heads, kind, AttentionComplexity::Auto, causal);
            c.local_relpe = local_relpe;
            expect_matches_masked_reference(c, RelPEType::None, n);
            c.scheme = RelPEScheme::parse("qkv", "relpe_scheme");
            expect_matches_masked_reference(c, RelPEType::Cosine, n);
            c.scheme = RelPEScheme::parse("q,k", "relpe_scheme");
            expect_matches_masked_reference(c, RelPEType::Rope, n);
          }
        }
}

TEST(DenseAttentionMasked, SlidingWindow) {
  for (const int64_t w : {4, 6})
    for (const int64_t n : {3, 4, 5, 10, 12, 13}) {
      expect_matches_masked_reference(config(8, 2, LayerKind::SlidingWindow, AttentionComplexity::Auto, true, "", w),
                                      RelPEType::None, n);
      expect_matches_masked_reference(
          config(8, 2, LayerKind::SlidingWindow, AttentionComplexity::Auto, true, "q,k,v", w), RelPEType::Rope, n);
    }
}

TEST(DenseAttentionMasked, LongerChunkedCausalWithManyChunks) {
  // 7 chunks with a remainder; one sequence so the prefix state crosses many chunks.
  expect_matches_masked_reference(config(8, 4, LayerKind::Global, AttentionComplexity::Auto, true, "", 4, 5),
                                  RelPEType::None, 33, 1);
  expect_matches_masked_reference(config(8, 4, LayerKind::Global, AttentionComplexity::Auto, true, "", 4, 5),
                                  RelPEType::None, 33, 3);
}

// ---- RelPE -------------------------------------------------------------------------------------------------------

TEST(RelPE, DiagonalTypesMatchHostFormula) {
  for (const auto type : {RelPEType::Cosine, RelPEType::CosMinusSin})
    for (const int64_t heads : {1, 2}) {
      const int64_t e = 8 / heads;
      RelPE r(type, 40, e, heads, DType::F64, Device::cpu());
      const Tensor x = random_tensor({3, 5, 8}, 21);
      const std::vector<int64_t> pos{3, 0, 7, 39, 2};
      const Tensor y = r.apply(x, Tensor::from_vector(pos, {5}, DType::I64));
      std::vector<double> ref = x.to_vector<double>();
      std::vector<int64_t> rows;
      for (int i = 0; i < 15; ++i) rows.push_back(pos[size_t(i % 5)]);
      host_relpe(ref, 15, 8, e, type, rows);
      EXPECT_LT(relative_error(y, Tensor::from_vector(ref, {3, 5, 8}, DType::F64)), 1e-14) << relpe_type_name(type);
    }
}

TEST(RelPE, RopeMatchesHostFormula) {
  for (const int64_t heads : {1, 2, 4}) {
    const int64_t d = 16, e = d / heads;
    RelPE r(RelPEType::Rope, 64, e, heads, DType::F64, Device::cpu());
    const Tensor x = random_tensor({2, 6, d}, 22);
    const std::vector<int64_t> pos{0, 1, 2, 63, 10, 5};
    const Tensor y = r.apply(x, Tensor::from_vector(pos, {6}, DType::I64));
    std::vector<double> ref = x.to_vector<double>();
    std::vector<int64_t> rows;
    for (int i = 0; i < 12; ++i) rows.push_back(pos[size_t(i % 6)]);
    host_relpe(ref, 12, d, e, RelPEType::Rope, rows);
    EXPECT_LT(relative_error(y, Tensor::from_vector(ref, {2, 6, d}, DType::F64)), 1e-14) << "H = " << heads;
  }
}

TEST(RelPE, TablesAreComputedInDoubleThenCast) {
  RelPE r64(RelPEType::Rope, 32, 8, 1, DType::F64, Device::cpu());
  RelPE r32(RelPEType::Rope, 32, 8, 1, DType::F32, Device::cpu());
  EXPECT_EQ(r32.table().dtype(), DType::F32);
  EXPECT_EQ(r32.table().to_vector<float>(), r64.table().to(DType::F32).to_vector<float>());
  EXPECT_EQ(r64.table().shape(), (Shape{32, 8}));
  // Row p, channel c: cos(p θ_{c mod e/2}), θ_k = 10000^(-2k/e).
  EXPECT_DOUBLE_EQ(r64.table().to_vector<double>()[size_t(31 * 8 + 5)], std::cos(31.0 * std::pow(10000.0, -2.0 / 8)));
  EXPECT_DOUBLE_EQ(r64.sin_table().to_vector<double>()[size_t(31 * 8 + 5)],
                   std::sin(31.0 * std::pow(10000.0, -2.0 / 8)));
}

TEST(RelPE, BackwardIsTheTranspose) {
  for (const auto type : {RelPEType::Cosine, RelPEType::CosMinusSin, RelPEType::Rope})
    for (const int64_t heads : {1, 2}) {
      RelPE r(type, 16, 8 / heads, heads, DType::F64, Device::cpu());
      const Tensor pos = r.positions(12, 4, 0, 12);
      const Tensor x = random_tensor({2, 12, 8}, 31), y = random_tensor({2, 12, 8}, 32);
      // ⟨R x, y⟩ = ⟨x, Rᵀ y⟩
      const double lhs = dense::testing::weighted_sum(r.apply(x, pos), y);
      const double rhs = dense::testing::weighted_sum(x, r.apply_backward(y, pos));
      EXPECT_NEAR(lhs, rhs, 1e-12 * std::abs(lhs) + 1e-12) << relpe_type_name(type);
    }
  // RoPE is a rotation: its transpose is its inverse.
  RelPE r(RelPEType::Rope, 16, 8, 1, DType::F64, Device::cpu());
  const Tensor pos = r.positions(16);
  const Tensor x = random_tensor({16, 8}, 33);
  EXPECT_LT(relative_error(r.apply_backward(r.apply(x, pos), pos), x), 1e-14);
}

TEST(RelPE, PositionsRestartPerWindowAndPadRowsGetZero) {
  RelPE r(RelPEType::Cosine, 8, 4, 1, DType::F64, Device::cpu());
  EXPECT_EQ(r.positions(5).to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(r.positions(8, 4, 0, 6).to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 3, 0, 1, 0, 0}));
  // Shifted local, w = 4, N = 5: two pad rows in front, positions counted on the padded sequence.
  EXPECT_EQ(r.positions(8, 4, 2, 7).to_vector<int64_t>(), (std::vector<int64_t>{0, 0, 2, 3, 0, 1, 2, 0}));
  EXPECT_EQ(r.positions(12, 0, 2, 7).to_vector<int64_t>(), (std::vector<int64_t>{0, 0, 2, 3, 4, 5, 6, 0, 0, 0, 0, 0}));
  EXPECT_TRUE(r.positions(8, 4, 0, 6).same_storage(r.positions(8, 4, 0, 6)));  // cached
}

TEST(RelPE, PositionOutsideTableNamesMaxPositionEmbeddings) {
  RelPE r(RelPEType::Rope, 8, 4, 1, DType::F64, Device::cpu());
  try {
    r.positions(9);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("max_position_embeddings"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(r.positions(16, 8, 0, 16));  // window-restarting positions stay below 8
  // A layer fed a sequence longer than the table.
  Harness hz(config(4, 1, LayerKind::Global, AttentionComplexity::Auto, false, "q,k"), RelPEType::Rope, DType::F64, 0.5,
             7, 8);
  EXPECT_THROW(hz.forward(random_tensor({1, 9, 4}, 1)), Error);
  EXPECT_NO_THROW(hz.forward(random_tensor({1, 8, 4}, 1)));
}

// ---- configuration errors ---------------------------------------------------------------------------------------

namespace {
template <typename F>
void expect_error_naming(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected dense::Error naming '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}
}  // namespace

TEST(AttentionConfig, ParsesNamesAndRejectsUnknownOnes) {
  EXPECT_EQ(parse_complexity("linear", "attention_complexity"), AttentionComplexity::Linear);
  EXPECT_EQ(parse_complexity("quadratic", "attention_complexity"), AttentionComplexity::Quadratic);
  EXPECT_EQ(parse_complexity("auto", "attention_complexity"), AttentionComplexity::Auto);
  expect_error_naming([] { parse_complexity("cubic", "attention_complexity"); }, "attention_complexity");

  EXPECT_EQ(parse_relpe_type("", "relpe_type"), RelPEType::None);
  EXPECT_EQ(parse_relpe_type("none", "relpe_type"), RelPEType::None);
  EXPECT_EQ(parse_relpe_type("dummy", "relpe_type"), RelPEType::None);
  EXPECT_EQ(parse_relpe_type("cosine", "relpe_type"), RelPEType::Cosine);
  EXPECT_EQ(parse_relpe_type("cos_minus_sin", "relpe_type"), RelPEType::CosMinusSin);
  EXPECT_EQ(parse_relpe_type("rope", "relpe_type"), RelPEType::Rope);
  expect_error_naming([] { parse_relpe_type("sine", "relpe_type"); }, "relpe_type");
  expect_error_naming([] { parse_relpe_type("learned", "relpe_type"); }, "learned");
  expect_error_naming([] { parse_relpe_type("learned", "relpe_type"); }, "relpe_type");

  const RelPEScheme qkv = RelPEScheme::parse("qkv", "relpe_scheme");
  EXPECT_TRUE(qkv.x && !qkv.q && !qkv.k && !qkv.v);
  const RelPEScheme qk = RelPEScheme::parse("q,k", "relpe_scheme");
  EXPECT_TRUE(!qk.x && qk.q && qk.k && !qk.v);
  const RelPEScheme all = RelPEScheme::parse(" q , k ,v", "relpe_scheme");
  EXPECT_TRUE(!all.x && all.q && all.k && all.v);
  EXPECT_FALSE(RelPEScheme::parse("", "relpe_scheme").any());
  expect_error_naming([] { RelPEScheme::parse("q,x", "relpe_scheme"); }, "relpe_scheme");
  expect_error_naming([] { RelPEScheme::parse("q,,k", "relpe_scheme"); }, "relpe_scheme");
}

TEST(AttentionConfig, RejectsInconsistentLayers) {
  ParameterSet params;
  expect_error_naming([&] { DenseAttention(params, "a", config(10, 4), nullptr, 0.1); }, "num_attention_heads");
  expect_error_naming([&] { DenseAttention(params, "b", config(8, 2, LayerKind::SlidingWindow), nullptr, 0.1); },
                      "causal");
  expect_error_naming(
      [&] {
        DenseAttention(params, "c", config(8, 2, LayerKind::Local, AttentionComplexity::Auto, false, "", 5), nullptr,
                       0.1);
      },
      "window_size");
}
