// CQS-Attention with one MPI rank per worker (ctest: mpirun -np 7 --oversubscribe, and -np 3 with the other
// communicator tests): every rank computes its worker's tiles, the merge and the backward meet in all-reduces,
// and every rank must end with full attention's output, lse and gradients. Inputs are the same on every rank
// (seeded), as a replicated activation would be.
#include <gtest/gtest.h>

#include <cmath>

#include "backend/ops.h"
#include "mpi_world.h"
#include "nn/attention_patterns.h"
#include "nn/device_graph.h"
#include "parallel/cqs_attention.h"

using namespace dense;

namespace {

Tensor seeded(const Shape& shape, uint64_t seed) {
  Tensor t = Tensor::empty(shape, DType::F64);
  ops::fill_normal(t, 0.0, 1.0, seed, 0);
  return t;
}

double rel(const Tensor& a, const Tensor& b) {
  const auto x = a.to_vector<double>(), y = b.to_vector<double>();
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isinf(y[i])) {
      if (x[i] != y[i]) return INFINITY;
      continue;
    }
    num = std::max(num, std::abs(x[i] - y[i]));
    den = std::max(den, std::abs(y[i]));
  }
  return num / std::max(den, 1e-300);
}

void check_distributed(GraphScore score, const char* pattern) {
  parallel::Communicator& comm = mpi_test_world();
  const int64_t W = comm.size();
  if (W < 3) GTEST_SKIP() << "CQS needs at least 3 ranks (W >= 3), this world has " << W;
  const int64_t B = 2, H = 2, e = 3, d = H * e, N = 5 * W + 3;  // N not divisible by W
  const nn::CsrGraph base = *pattern ? nn::build_pattern(nn::parse_pattern(pattern, "test"), N, 1).graphs[0]
                                     : nn::CsrGraph::from_predicate(N, N, [](int64_t, int64_t) { return true; });
  const parallel::CqsAttentionConfig cfg{score, H, 1.0 / std::sqrt(double(e))};
  parallel::CqsAttention cqs(parallel::make_cqs_schedule(N, W), cfg, *pattern ? &base : nullptr);
  const Tensor q = seeded({B, N, d}, 1), k = seeded({B, N, d}, 2), v = seeded({B, N, d}, 3),
               dout = seeded({B, N, d}, 4);
  std::vector<double> valid(size_t(B * N), 1.0);
  for (int64_t i = 0; i < 4; ++i) valid[size_t(2 * N - 1 - i)] = 0.0;
  const Tensor mask = Tensor::from_vector<double>(valid, {B, N}, DType::F64);

  const bool softmax = score == GraphScore::Softmax;
  Tensor o = Tensor::empty(q.shape(), DType::F64), lse = Tensor::empty({B, H, N}, DType::F64);
  cqs.forward(comm, q, k, v, &mask, o, softmax ? &lse : nullptr);
  Tensor dq = Tensor::empty(q.shape(), DType::F64), dk = dq.clone(), dv = dq.clone();
  cqs.backward(comm, q, k, v, &mask, o, softmax ? &lse : nullptr, dout, dq, dk, dv);

  const nn::DeviceGraph full = nn::DeviceGraph::upload({base}, Device::cpu());
  Tensor o_ref = Tensor::empty(q.shape(), DType::F64), lse_ref = Tensor::empty({B, H, N}, DType::F64);
  ops::graph_attention_forward(score, q, k, v, full.forward_ref(), &mask, H, cfg.scale, o_ref, &lse_ref);
  Tensor dq_ref = Tensor::empty(q.shape(), DType::F64), dk_ref = dq_ref.clone(), dv_ref = dq_ref.clone();
  ops::graph_attention_backward(score, q, k, v, full.forward_ref(), full.transposed_ref(), &mask, H, cfg.scale, o_ref,
                                dout, &lse_ref, dq_ref, dk_ref, dv_ref);
  EXPECT_LT(rel(o, o_ref), 1e-12) << "rank " << comm.rank();
  if (softmax) {
    EXPECT_LT(rel(lse, lse_ref), 1e-12) << "rank " << comm.rank();
  }
  EXPECT_LT(rel(dq, dq_ref), 1e-12) << "rank " << comm.rank();
  EXPECT_LT(rel(dk, dk_ref), 1e-12) << "rank " << comm.rank();
  EXPECT_LT(rel(dv, dv_ref), 1e-12) << "rank " << comm.rank();
}

TEST(CqsMpi, SoftmaxEqualsFullAttention) { check_distributed(GraphScore::Softmax, ""); }
TEST(CqsMpi, LinearEqualsFullDenseAttention) { check_distributed(GraphScore::Linear, ""); }
TEST(CqsMpi, SoftmaxOverABigBirdPattern) { check_distributed(GraphScore::Softmax, "bigbird:block=4,seed=5"); }

}  // namespace
