// Graph-processing sparse attention (backend graph_attention_*): against a dense masked attention written
// here from the definition, against float64 finite differences, across dtypes, and CSR against the band.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include <fmt/format.h>

#include "backend/ops.h"
#include "gradcheck.h"
#include "nn/attention_graph.h"
#include "nn/attention_patterns.h"
#include "nn/device_graph.h"
#include "test_files.h"

namespace dense {
namespace {

using nn::CsrGraph;
using nn::DeviceGraph;
using testing::random_tensor;

// A random graph with empty rows, full rows and everything between.
CsrGraph random_graph(int64_t rows, int64_t keys, uint64_t seed, double density) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  return CsrGraph::from_predicate(rows, keys, [&](int64_t i, int64_t) {
    if (i % 7 == 3) return false;  // empty rows: no neighbour at all
    if (i % 11 == 5) return true;  // full rows
    return u(rng) < density;
  });
}

// Dense masked attention from the definition, in double. mask(h, i, j); key_valid [B, Nk] or empty.
struct Reference {
  std::vector<double> o, lse;
};
Reference dense_masked(GraphScore score, const Tensor& q, const Tensor& k, const Tensor& v,
                       const std::vector<CsrGraph>& graphs, const std::vector<double>& key_valid, int64_t heads,
                       double scale) {
  const auto Q = q.to(DType::F64).to_vector<double>(), K = k.to(DType::F64).to_vector<double>(),
             V = v.to(DType::F64).to_vector<double>();
  const int64_t B = q.size(0), nq = q.size(1), nk = k.size(1), d = q.size(2), e = d / heads;
  Reference r{std::vector<double>(Q.size(), 0.0), std::vector<double>(size_t(B * heads * nq), 0.0)};
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < nq; ++i) {
        const CsrGraph& g = graphs[graphs.size() == 1 ? 0 : size_t(h)];
        std::vector<double> s(size_t(nk), -std::numeric_limits<double>::infinity());
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < nk; ++j) {
          if (!g.contains(i, j) || (!key_valid.empty() && key_valid[size_t(b * nk + j)] == 0.0)) continue;
          double dot = 0.0;
          for (int64_t c = 0; c < e; ++c)
            dot += Q[size_t((b * nq + i) * d + h * e + c)] * K[size_t((b * nk + j) * d + h * e + c)];
          s[size_t(j)] = score == GraphScore::Softmax ? scale * dot : dot;
          mx = std::max(mx, s[size_t(j)]);
        }
        double sum = 0.0;
        if (score == GraphScore::Softmax)
          for (double x : s) sum += std::isinf(x) ? 0.0 : std::exp(x - mx);
        for (int64_t j = 0; j < nk; ++j) {
          if (std::isinf(s[size_t(j)]) && s[size_t(j)] < 0) continue;
          const double w = score == GraphScore::Softmax ? std::exp(s[size_t(j)] - mx) / sum : s[size_t(j)];
          for (int64_t c = 0; c < e; ++c)
            r.o[size_t((b * nq + i) * d + h * e + c)] += w * V[size_t((b * nk + j) * d + h * e + c)];
        }
        r.lse[size_t((b * heads + h) * nq + i)] =
            sum > 0 ? mx + std::log(sum) : -std::numeric_limits<double>::infinity();
      }
  return r;
}

double max_rel_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    num = std::max(num, std::abs(a[i] - b[i]));
    den = std::max(den, std::abs(b[i]));
  }
  return num / std::max(den, 1e-300);
}

struct Case {
  GraphScore score;
  int64_t batch, nq, nk, heads, e;
  bool per_head_graphs, key_mask;
};

class GraphAttentionCases : public ::testing::TestWithParam<Case> {};

TEST_P(GraphAttentionCases, ForwardEqualsDenseMaskedAttentionAndBackwardEqualsFiniteDifferences) {
  const Case c = GetParam();
  const int64_t d = c.heads * c.e;
  std::vector<CsrGraph> graphs;
  for (int64_t h = 0; h < (c.per_head_graphs ? c.heads : 1); ++h)
    graphs.push_back(random_graph(c.nq, c.nk, 100 + uint64_t(h), 0.35));
  const DeviceGraph dg = DeviceGraph::upload(graphs, Device::cpu());
  Tensor q = random_tensor({c.batch, c.nq, d}, 1), k = random_tensor({c.batch, c.nk, d}, 2),
         v = random_tensor({c.batch, c.nk, d}, 3);
  std::vector<double> valid;
  Tensor key_valid;
  if (c.key_mask) {
    for (int64_t i = 0; i < c.batch * c.nk; ++i) valid.push_back(i % 5 == 2 ? 0.0 : 1.0);
    key_valid = Tensor::from_vector<double>(valid, {c.batch, c.nk}, DType::F64);
  }
  const Tensor* kv = c.key_mask ? &key_valid : nullptr;
  const double scale = 1.0 / std::sqrt(double(c.e));

  Tensor o = Tensor::full(q.shape(), std::nan(""), DType::F64);  // poisoned: every element must be written
  Tensor lse = Tensor::full({c.batch, c.heads, c.nq}, std::nan(""), DType::F64);
  ops::graph_attention_forward(c.score, q, k, v, dg.forward_ref(), kv, c.heads, scale, o, &lse);
  const Reference ref = dense_masked(c.score, q, k, v, graphs, valid, c.heads, scale);
  EXPECT_LT(max_rel_diff(o.to_vector<double>(), ref.o), 1e-12);
  if (c.score == GraphScore::Softmax) {
    const auto got = lse.to_vector<double>();
    for (size_t i = 0; i < got.size(); ++i) {
      if (std::isinf(ref.lse[i]))
        EXPECT_TRUE(std::isinf(got[i]) && got[i] < 0) << i;
      else
        EXPECT_NEAR(got[i], ref.lse[i], 1e-12) << i;
    }
  }

  Tensor dq = Tensor::full(q.shape(), std::nan(""), DType::F64), dk = Tensor::full(k.shape(), std::nan(""), DType::F64),
         dv = Tensor::full(v.shape(), std::nan(""), DType::F64);
  auto forward = [&] {
    ops::graph_attention_forward(c.score, q, k, v, dg.forward_ref(), kv, c.heads, scale, o, &lse);
    return o;
  };
  auto backward = [&](const Tensor& dout) {
    forward();
    ops::graph_attention_backward(c.score, q, k, v, dg.forward_ref(), dg.transposed_ref(), kv, c.heads, scale, o, dout,
                                  &lse, dq, dk, dv);
  };
  testing::check_gradients(forward, backward, {{"q", q, dq}, {"k", k, dk}, {"v", v, dv}}, 1e-7);
}

INSTANTIATE_TEST_SUITE_P(Scores, GraphAttentionCases,
                         ::testing::Values(Case{GraphScore::Softmax, 2, 13, 13, 2, 3, false, false},
                                           Case{GraphScore::Softmax, 2, 13, 13, 3, 2, true, true},
                                           Case{GraphScore::Softmax, 1, 9, 17, 1, 4, false,
                                                true},  // cross attention, Nq != Nk
                                           Case{GraphScore::Linear, 2, 13, 13, 2, 3, false, false},
                                           Case{GraphScore::Linear, 2, 11, 11, 3, 2, true, true}),
                         [](const auto& info) {
                           const Case& c = info.param;
                           return fmt::format(
                               "{}_h{}_{}{}_{}x{}", c.score == GraphScore::Softmax ? "softmax" : "linear", c.heads,
                               c.per_head_graphs ? "perhead" : "shared", c.key_mask ? "_masked" : "", c.nq, c.nk);
                         });

// Every pattern of the library through the kernel: equal to dense masked attention (f64 to 1e-12, f32 to
// 1e-5), forward and backward, with per-head patterns where the pattern has them.
TEST(GraphAttention, EveryPatternEqualsDenseMaskedAttention) {
  const char* patterns[] = {"dense",
                            "sliding_window:window=3",
                            "dilated:window=2,dilation=3",
                            "dilated_2d:block=8,dilation=2",
                            "global:global_tokens=0+7,window=1",
                            "longformer:window=2,global_tokens=5",
                            "bigbird:block=4,seed=9",
                            "block_local:block=6",
                            "strided:stride=5",
                            "strided:stride=4,heads_mode=multihead,causal=true",
                            "fixed:stride=8,summary=2,num_patterns=2,heads_mode=multihead",
                            "fixed:stride=6,summary=2,causal=true"};
  const int64_t B = 2, N = 29, H = 2, e = 4, d = H * e;
  for (const char* text : patterns) {
    SCOPED_TRACE(text);
    const nn::AttentionPattern pattern = nn::build_pattern(nn::parse_pattern(text, "test"), N, H);
    const DeviceGraph dg = DeviceGraph::upload(pattern.graphs, Device::cpu());
    const Tensor q = random_tensor({B, N, d}, 31), k = random_tensor({B, N, d}, 32), v = random_tensor({B, N, d}, 33),
                 dout = random_tensor({B, N, d}, 34);
    for (GraphScore score : {GraphScore::Softmax, GraphScore::Linear}) {
      const Reference ref = dense_masked(score, q, k, v, pattern.graphs, {}, H, 0.5);
      Reference f32;
      for (DType t : {DType::F64, DType::F32}) {
        const Tensor qt = q.to(t), kt = k.to(t), vt = v.to(t);
        Tensor o = Tensor::empty(q.shape(), t), lse = Tensor::empty({B, H, N}, ops::rownorm_stats_dtype(t));
        ops::graph_attention_forward(score, qt, kt, vt, dg.forward_ref(), nullptr, H, 0.5, o, &lse);
        EXPECT_LT(max_rel_diff(o.to(DType::F64).to_vector<double>(), ref.o), t == DType::F64 ? 1e-12 : 1e-5);
      }
      // Backward in f64 against finite differences of the kernel's forward, which equals the reference above.
      Tensor qv = q.clone(), kv = k.clone(), vv = v.clone();
      Tensor o = Tensor::empty(q.shape(), DType::F64), lse = Tensor::empty({B, H, N}, DType::F64);
      Tensor dq = Tensor::empty(q.shape(), DType::F64), dk = dq.clone(), dv = dq.clone();
      auto forward = [&] {
        ops::graph_attention_forward(score, qv, kv, vv, dg.forward_ref(), nullptr, H, 0.5, o, &lse);
        return o;
      };
      auto backward = [&](const Tensor& g) {
        forward();
        ops::graph_attention_backward(score, qv, kv, vv, dg.forward_ref(), dg.transposed_ref(), nullptr, H, 0.5, o, g,
                                      &lse, dq, dk, dv);
      };
      testing::check_gradients(forward, backward, {{"q", qv, dq}, {"k", kv, dk}, {"v", vv, dv}}, 1e-7, 1e-6, 60);
    }
  }
}

// The band needs no index memory; it must agree with the same band spelled out as CSR, forward and backward.
TEST(GraphAttention, ImplicitBandEqualsExplicitCsr) {
  const int64_t B = 2, N = 37, H = 2, e = 4, d = H * e, w = 5;
  for (GraphScore score : {GraphScore::Softmax, GraphScore::Linear}) {
    const DeviceGraph band = DeviceGraph::band(N, N, -w, w);
    const DeviceGraph csr = DeviceGraph::upload(
        {CsrGraph::from_predicate(N, N, [&](int64_t i, int64_t j) { return std::abs(i - j) <= w; })}, Device::cpu());
    EXPECT_EQ(band.nnz(), csr.nnz());
    const Tensor q = random_tensor({B, N, d}, 4), k = random_tensor({B, N, d}, 5), v = random_tensor({B, N, d}, 6),
                 dout = random_tensor({B, N, d}, 7);
    Tensor results[2][5];
    const DeviceGraph* graphs[2] = {&band, &csr};
    for (int g = 0; g < 2; ++g) {
      Tensor o = Tensor::empty(q.shape(), DType::F64), lse = Tensor::empty({B, H, N}, DType::F64);
      ops::graph_attention_forward(score, q, k, v, graphs[g]->forward_ref(), nullptr, H, 0.5, o, &lse);
      Tensor dq = Tensor::empty(q.shape(), DType::F64), dk = Tensor::empty(q.shape(), DType::F64),
             dv = Tensor::empty(q.shape(), DType::F64);
      ops::graph_attention_backward(score, q, k, v, graphs[g]->forward_ref(), graphs[g]->transposed_ref(), nullptr, H,
                                    0.5, o, dout, &lse, dq, dk, dv);
      results[g][0] = o;
      results[g][1] = lse;
      results[g][2] = dq;
      results[g][3] = dk;
      results[g][4] = dv;
    }
    for (int r = 0; r < 5; ++r) {  // same neighbours in the same order: bit for bit (lse is softmax's only)
      if (r == 1 && score != GraphScore::Softmax) continue;
      EXPECT_EQ(results[0][r].to_vector<double>(), results[1][r].to_vector<double>()) << r;
    }
  }
}

// Reduced precision computes in f32: f32 within 1e-5 of f64, bf16 within 1e-2.
TEST(GraphAttention, ReducedPrecisionTracksFloat64) {
  const int64_t B = 2, N = 64, H = 2, e = 16, d = H * e;
  const DeviceGraph dg = DeviceGraph::upload({random_graph(N, N, 9, 0.2)}, Device::cpu());
  const Tensor q = random_tensor({B, N, d}, 11), k = random_tensor({B, N, d}, 12), v = random_tensor({B, N, d}, 13),
               dout = random_tensor({B, N, d}, 14);
  auto run = [&](DType t) {
    const Tensor qt = q.to(t), kt = k.to(t), vt = v.to(t), dt = dout.to(t);
    Tensor o = Tensor::empty(q.shape(), t), lse = Tensor::empty({B, H, N}, ops::rownorm_stats_dtype(t));
    ops::graph_attention_forward(GraphScore::Softmax, qt, kt, vt, dg.forward_ref(), nullptr, H, 0.25, o, &lse);
    Tensor dq = Tensor::empty(q.shape(), t), dk = Tensor::empty(q.shape(), t), dv = Tensor::empty(q.shape(), t);
    ops::graph_attention_backward(GraphScore::Softmax, qt, kt, vt, dg.forward_ref(), dg.transposed_ref(), nullptr, H,
                                  0.25, o, dt, &lse, dq, dk, dv);
    return std::vector<std::vector<double>>{o.to(DType::F64).to_vector<double>(), dq.to(DType::F64).to_vector<double>(),
                                            dk.to(DType::F64).to_vector<double>(),
                                            dv.to(DType::F64).to_vector<double>()};
  };
  const auto ref = run(DType::F64), f32 = run(DType::F32), b16 = run(DType::BF16);
  for (size_t i = 0; i < ref.size(); ++i) {
    EXPECT_LT(max_rel_diff(f32[i], ref[i]), 1e-5) << i;
    EXPECT_LT(max_rel_diff(b16[i], ref[i]), 2e-2) << i;
  }
}

// The output may overwrite the queries (the 50M-token forward keeps only Q/O, K and V in memory).
TEST(GraphAttention, OutputMayAliasQueries) {
  const int64_t B = 1, N = 40, H = 2, d = 8;
  const DeviceGraph dg = DeviceGraph::band(N, N, -3, 3);
  const Tensor q = random_tensor({B, N, d}, 21, 1.0, DType::F32), k = random_tensor({B, N, d}, 22, 1.0, DType::F32),
               v = random_tensor({B, N, d}, 23, 1.0, DType::F32);
  Tensor o = Tensor::empty(q.shape(), DType::F32);
  ops::graph_attention_forward(GraphScore::Softmax, q, k, v, dg.forward_ref(), nullptr, H, 0.3, o, nullptr);
  Tensor inplace = q.contiguous().clone();
  ops::graph_attention_forward(GraphScore::Softmax, inplace, k, v, dg.forward_ref(), nullptr, H, 0.3, inplace, nullptr);
  EXPECT_EQ(inplace.to_vector<float>(), o.to_vector<float>());
}

TEST(GraphAttention, BadArgumentsAreRefusedWithTheReason) {
  const Tensor q = random_tensor({1, 6, 4}, 1), k = random_tensor({1, 6, 4}, 2);
  Tensor o = Tensor::empty(q.shape(), DType::F64);
  const DeviceGraph dg =
      DeviceGraph::upload({CsrGraph::from_predicate(6, 6, [](int64_t, int64_t) { return true; })}, Device::cpu());
  auto message = [](auto&& f) { return dense::testing::error_of(f); };
  EXPECT_NE(message([&] {
              ops::graph_attention_forward(GraphScore::Softmax, q, k, k, dg.forward_ref(), nullptr, 3, 1.0, o, nullptr);
            }).find("not divisible by 3 heads"),
            std::string::npos);
  const Tensor k7 = random_tensor({1, 7, 4}, 2);
  EXPECT_NE(message([&] {
              ops::graph_attention_forward(GraphScore::Softmax, q, k7, k7, dg.forward_ref(), nullptr, 1, 1.0, o,
                                           nullptr);
            }).find("the graph is 6 x 6 but there are 6 queries and 7 keys"),
            std::string::npos);
  Tensor dq = Tensor::empty(q.shape(), DType::F64);
  EXPECT_NE(message([&] {
              ops::graph_attention_backward(GraphScore::Softmax, q, k, k, dg.forward_ref(), dg.transposed_ref(),
                                            nullptr, 1, 1.0, o, o, nullptr, dq, dq, dq);
            }).find("needs lse"),
            std::string::npos);
  CsrGraph bad = CsrGraph::from_predicate(3, 3, [](int64_t i, int64_t j) { return i == j; });
  bad.col[1] = 7;
  EXPECT_NE(message([&] { DeviceGraph::upload({bad}, Device::cpu()); }).find("row 1 has column 7 outside [0, 3)"),
            std::string::npos);
}

TEST(CsrGraph, TransposeUnionIntersection) {
  const CsrGraph a = random_graph(9, 12, 1, 0.4), b = random_graph(9, 12, 2, 0.4);
  const CsrGraph t = a.transposed();
  t.validate("transpose");
  for (int64_t i = 0; i < 9; ++i)
    for (int64_t j = 0; j < 12; ++j) {
      EXPECT_EQ(t.contains(j, i), a.contains(i, j));
      EXPECT_EQ(CsrGraph::unite(a, b).contains(i, j), a.contains(i, j) || b.contains(i, j));
      EXPECT_EQ(CsrGraph::intersect(a, b).contains(i, j), a.contains(i, j) && b.contains(i, j));
    }
  EXPECT_EQ(t.transposed(), a);
}

}  // namespace
}  // namespace dense
