// CQS-Attention in sequential mode: the W workers' outputs merged by the tiler, and the second-round backward,
// equal full attention over the same graph (softmax with the log-sum-exp merge, DenseAttention's linear score
// with the plain sum), for W = 3, 7, 13 with N not divisible by W, with and without a base pattern and padding.
// tests/parallel/mpi/cqs_mpi_test.cpp runs the same with one MPI rank per worker.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include <fmt/format.h>

#include "backend/ops.h"
#include "gradcheck.h"
#include "nn/attention_patterns.h"
#include "nn/device_graph.h"
#include "parallel/cqs_attention.h"
#include "test_files.h"

namespace dense {
namespace {

using parallel::CqsAttention;
using testing::random_tensor;

double rel(const Tensor& a, const Tensor& b) {
  const auto x = a.to(DType::F64).to_vector<double>(), y = b.to(DType::F64).to_vector<double>();
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isinf(y[i]) || std::isinf(x[i])) {
      EXPECT_EQ(x[i], y[i]) << i;
      continue;
    }
    num = std::max(num, std::abs(x[i] - y[i]));
    den = std::max(den, std::abs(y[i]));
  }
  return num / std::max(den, 1e-300);
}

nn::CsrGraph full_graph(int64_t n) {
  return nn::CsrGraph::from_predicate(n, n, [](int64_t, int64_t) { return true; });
}

struct Case {
  int64_t workers, seq_len;
  GraphScore score;
  const char* base;  // pattern text or "" for full attention
  bool key_mask;
};

class CqsSequential : public ::testing::TestWithParam<Case> {};

TEST_P(CqsSequential, EqualsFullAttentionForwardAndBackward) {
  const Case c = GetParam();
  const int64_t B = 2, H = 2, e = 3, d = H * e, N = c.seq_len;
  const nn::CsrGraph base =
      *c.base ? nn::build_pattern(nn::parse_pattern(c.base, "test"), N, 1).graphs[0] : full_graph(N);
  parallel::CqsAttentionConfig cfg{c.score, H, 1.0 / std::sqrt(double(e))};
  CqsAttention cqs(parallel::make_cqs_schedule(N, c.workers), cfg, *c.base ? &base : nullptr);

  // The workers' cells partition the base graph: each (query, key) cell exactly once.
  std::set<std::pair<int64_t, int64_t>> cells;
  int64_t total = 0;
  for (int64_t w = 0; w < cqs.workers(); ++w) {
    const auto& g = cqs.worker_graph(w);
    const auto& m = cqs.material(w);
    for (int64_t a = 0; a < g.rows; ++a)
      for (int64_t p = g.row_ptr[a]; p < g.row_ptr[a + 1]; ++p) {
        cells.insert({m[size_t(a)], m[size_t(g.col[p])]});
        ++total;
      }
  }
  EXPECT_EQ(total, base.nnz());
  EXPECT_EQ(int64_t(cells.size()), base.nnz());
  for (const auto& [i, j] : cells) EXPECT_TRUE(base.contains(i, j)) << i << "," << j;

  const Tensor q = random_tensor({B, N, d}, 1), k = random_tensor({B, N, d}, 2), v = random_tensor({B, N, d}, 3),
               dout = random_tensor({B, N, d}, 4);
  std::vector<double> valid(size_t(B * N), 1.0);
  if (c.key_mask)
    for (int64_t i = 0; i < N / 4; ++i) valid[size_t(N + N - 1 - i)] = 0.0;  // padding at the end of sequence 1
  const Tensor kv = Tensor::from_vector<double>(valid, {B, N}, DType::F64);
  const Tensor* mask = c.key_mask ? &kv : nullptr;

  const nn::DeviceGraph full = nn::DeviceGraph::upload({base}, Device::cpu());
  Tensor o_ref = Tensor::empty(q.shape(), DType::F64), lse_ref = Tensor::empty({B, H, N}, DType::F64);
  ops::graph_attention_forward(c.score, q, k, v, full.forward_ref(), mask, H, cfg.scale, o_ref, &lse_ref);
  Tensor dq_ref = Tensor::empty(q.shape(), DType::F64), dk_ref = Tensor::empty(q.shape(), DType::F64),
         dv_ref = Tensor::empty(q.shape(), DType::F64);
  ops::graph_attention_backward(c.score, q, k, v, full.forward_ref(), full.transposed_ref(), mask, H, cfg.scale, o_ref,
                                dout, &lse_ref, dq_ref, dk_ref, dv_ref);

  const bool softmax = c.score == GraphScore::Softmax;
  Tensor o = Tensor::full(q.shape(), std::nan(""), DType::F64), lse = Tensor::full({B, H, N}, std::nan(""), DType::F64);
  cqs.forward(q, k, v, mask, o, softmax ? &lse : nullptr);
  EXPECT_LT(rel(o, o_ref), 1e-12);
  if (softmax) {
    EXPECT_LT(rel(lse, lse_ref), 1e-12);
  }
  Tensor dq = Tensor::full(q.shape(), std::nan(""), DType::F64), dk = dq.clone(), dv = dq.clone();
  cqs.backward(q, k, v, mask, o, softmax ? &lse : nullptr, dout, dq, dk, dv);
  EXPECT_LT(rel(dq, dq_ref), 1e-12);
  EXPECT_LT(rel(dk, dk_ref), 1e-12);
  EXPECT_LT(rel(dv, dv_ref), 1e-12);
}

INSTANTIATE_TEST_SUITE_P(
    Workers, CqsSequential,
    ::testing::Values(Case{3, 40, GraphScore::Softmax, "", false}, Case{7, 40, GraphScore::Softmax, "", true},
                      Case{13, 41, GraphScore::Softmax, "", false}, Case{7, 40, GraphScore::Linear, "", false},
                      Case{13, 41, GraphScore::Linear, "", true},
                      Case{7, 47, GraphScore::Softmax, "bigbird:block=4,seed=3", true},
                      Case{3, 40, GraphScore::Softmax, "sliding_window:window=3", false},
                      Case{13, 41, GraphScore::Softmax, "fixed:stride=8,summary=2,causal=true", false},
                      Case{8, 43, GraphScore::Linear, "strided:stride=5", false}),
    [](const auto& info) {
      const Case& c = info.param;
      std::string base = c.base;
      base = base.substr(0, base.find(':'));
      // fmt, not operator+ on std::string: GCC 12 warns falsely (-Wrestrict) on "literal" + std::string&&.
      return fmt::format("W{}_N{}_{}_{}{}", c.workers, c.seq_len, c.score == GraphScore::Softmax ? "softmax" : "linear",
                         base.empty() ? "full" : base, c.key_mask ? "_padded" : "");
    });

// Whole-model precision: f32 inputs give the f32 full attention within 1e-5.
TEST(CqsAttention, Float32MatchesFullAttention) {
  const int64_t B = 1, H = 2, d = 16, N = 50;
  parallel::CqsAttentionConfig cfg{GraphScore::Softmax, H, 0.35};
  CqsAttention cqs(parallel::make_cqs_schedule(N, 7), cfg);
  const Tensor q = random_tensor({B, N, d}, 5, 1.0, DType::F32), k = random_tensor({B, N, d}, 6, 1.0, DType::F32),
               v = random_tensor({B, N, d}, 7, 1.0, DType::F32);
  const nn::DeviceGraph full = nn::DeviceGraph::upload({full_graph(N)}, Device::cpu());
  Tensor o_ref = Tensor::empty(q.shape(), DType::F32);
  ops::graph_attention_forward(GraphScore::Softmax, q, k, v, full.forward_ref(), nullptr, H, 0.35, o_ref, nullptr);
  Tensor o = Tensor::empty(q.shape(), DType::F32), lse = Tensor::empty({B, H, N}, DType::F32);
  cqs.forward(q, k, v, nullptr, o, &lse);
  EXPECT_LT(rel(o, o_ref), 1e-5);
}

// The memory the scheme saves: a worker holds about |I|/W of the tokens and 1/W of the cells.
TEST(CqsAttention, WorkersHoldAFractionOfTheSequence) {
  const int64_t N = 31 * 40;
  CqsAttention cqs(parallel::make_cqs_schedule(N, 31), {GraphScore::Softmax, 1, 1.0});
  size_t longest = 0;
  int64_t cells = 0;
  for (int64_t w = 0; w < 31; ++w) {
    longest = std::max(longest, cqs.material(w).size());
    cells = std::max(cells, cqs.worker_graph(w).nnz());
  }
  EXPECT_NEAR(double(longest) / double(N), 6.0 / 31.0, 1e-9);  // |I| = 6 groups of N/31 tokens
  EXPECT_LE(double(cells), 1.01 * double(N) * double(N) / 31.0 + double(N));
}

TEST(CqsAttention, BadInputsAreRefused) {
  const nn::CsrGraph wrong = full_graph(10);
  auto message = [](auto&& f) { return dense::testing::error_of(f); };
  EXPECT_NE(message([&] {
              CqsAttention(parallel::make_cqs_schedule(12, 3), {GraphScore::Softmax, 1, 1.0}, &wrong);
            }).find("base pattern is 10 x 10 but the schedule is for 12 tokens"),
            std::string::npos);
  CqsAttention cqs(parallel::make_cqs_schedule(12, 3), {GraphScore::Softmax, 1, 1.0});
  const Tensor q = random_tensor({1, 11, 4}, 1);
  Tensor o = Tensor::empty(q.shape(), DType::F64);
  EXPECT_NE(message([&] { cqs.forward(q, q, q, nullptr, o, nullptr); }).find("the schedule's length"),
            std::string::npos);
}

}  // namespace
}  // namespace dense
