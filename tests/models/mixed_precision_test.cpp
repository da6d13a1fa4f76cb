// Half-precision numerics that only show at scale: the cross-entropy statistics of bf16/f16 logits and the
// scatter-add of a token that repeats thousands of times in a batch. Both are checked against f64/f32 on the
// CPU backend; the CUDA kernels follow the same rules and are compared with these in cuda_parity_test.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include <nlohmann/json.hpp>

#include "backend/ops.h"
#include "gradcheck.h"
#include "models/model.h"
#include "nn/context.h"

using namespace dense;

namespace {

// Logits of `vocab` classes with lse near 10 (where a bf16 value's step is 1/16), rounded to `t`.
Tensor wide_logits(int64_t rows, int64_t vocab, DType t) {
  Tensor x = Tensor::empty({rows, vocab}, DType::F32);
  ops::fill_normal(x, 0.5, 2.0, 901, 0);
  return x.to(t);
}

TEST(MixedPrecision, CrossEntropyKeepsItsStatisticsInF32ForHalfLogits) {
  const int64_t rows = 7, vocab = 3001;
  for (DType t : {DType::BF16, DType::F16}) {
    SCOPED_TRACE(std::string(dtype_name(t)));
    const Tensor logits = wide_logits(rows, vocab, t);
    std::vector<int64_t> lab = {5, 3000, 0, -100, 1234, 17, 2999};
    const Tensor labels = Tensor::from_vector(lab, {rows}, DType::I64);
    Tensor loss = Tensor::empty({rows}, DType::F32), lse = Tensor::empty({rows}, DType::F32);
    ops::cross_entropy_forward(logits, labels, loss, lse);

    // f64 reference on the same (already rounded) logits.
    const auto x = logits.to_vector<double>();
    const auto got_lse = lse.to_vector<double>(), got_loss = loss.to_vector<double>();
    std::vector<double> ref_lse(size_t(rows), 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      double mx = -INFINITY, s = 0.0;
      for (int64_t j = 0; j < vocab; ++j) mx = std::max(mx, x[size_t(r * vocab + j)]);
      for (int64_t j = 0; j < vocab; ++j) s += std::exp(x[size_t(r * vocab + j)] - mx);
      ref_lse[size_t(r)] = mx + std::log(s);
      EXPECT_GT(ref_lse[size_t(r)], 8.0) << "the test needs lse where a bf16 step is coarse";
      EXPECT_NEAR(got_lse[size_t(r)], ref_lse[size_t(r)], 1e-5 * ref_lse[size_t(r)]) << "row " << r;
      const double ref_loss = lab[size_t(r)] < 0 ? 0.0 : ref_lse[size_t(r)] - x[size_t(r * vocab + lab[size_t(r)])];
      EXPECT_NEAR(got_loss[size_t(r)], ref_loss, 1e-5 * ref_lse[size_t(r)]) << "row " << r;
    }

    // Softmax minus one-hot sums to zero per row: with an lse rounded to bf16 it was off by up to ~3%.
    Tensor d = Tensor::empty({rows, vocab}, t);
    ops::cross_entropy_backward(logits, labels, lse, 1.0, d);
    const auto g = d.to_vector<double>();
    for (int64_t r = 0; r < rows; ++r) {
      // One rounding of each element: relative 2^-8 (bf16's half ulp, f16 is finer) above f16's subnormal step.
      const double floor = t == DType::F16 ? std::ldexp(1.0, -24) : 0.0;
      double sum = 0.0, worst = 0.0;
      for (int64_t j = 0; j < vocab; ++j) {
        sum += g[size_t(r * vocab + j)];
        if (lab[size_t(r)] < 0) continue;
        const double ref = std::exp(x[size_t(r * vocab + j)] - ref_lse[size_t(r)]) - (j == lab[size_t(r)] ? 1.0 : 0.0);
        const double allowed = std::abs(ref) / 256 + floor;
        worst = std::max(worst, std::abs(g[size_t(r * vocab + j)] - ref) / allowed);
      }
      EXPECT_LT(std::abs(sum), 2e-3) << "row " << r << ": gradients sum to " << sum;
      EXPECT_LE(worst, 1.0) << "row " << r << ": an element is further from f64 than one rounding";
    }
  }
}

TEST(MixedPrecision, HalfStatisticsAreRefusedWithTheDtypeNamed) {
  const Tensor logits = wide_logits(2, 5, DType::BF16);
  const Tensor labels = Tensor::from_vector<int64_t>({1, 2}, {2}, DType::I64);
  Tensor loss = Tensor::empty({2}, DType::BF16), lse = Tensor::empty({2}, DType::BF16);
  try {
    ops::cross_entropy_forward(logits, labels, loss, lse);
    FAIL() << "bf16 statistics were accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("must be f32 for bf16 logits"), std::string::npos) << e.what();
  }
}

// One id repeated over 4,000 times with positive addends near 1: a bf16 entry rounded after every addition stops at
// 256 (its step there is 2), far below the true sum near 4,096.
TEST(MixedPrecision, ScatterAddOfARepeatedIdRoundsOnce) {
  const int64_t cols = 24, n = 4400, rows = 50;  // every 14th id is another row
  std::vector<int64_t> ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) ids[size_t(i)] = i % 14 == 13 ? 1 + (i * 7) % (rows - 1) : 0;
  int64_t count0 = 0;
  for (int64_t id : ids) count0 += id == 0;
  ASSERT_GE(count0, 4000);
  const Tensor id_t = Tensor::from_vector(ids, {n}, DType::I64);
  Tensor src32 = Tensor::empty({n, cols}, DType::F32);
  ops::fill_uniform(src32, 0.5, 1.5, 77, 0);
  Tensor table32 = Tensor::empty({rows, cols}, DType::F32);
  ops::fill_normal(table32, 0.0, 1.0, 78, 0);
  for (DType t : {DType::BF16, DType::F16}) {
    SCOPED_TRACE(std::string(dtype_name(t)));
    const Tensor src = src32.to(t);
    Tensor table = table32.to(t);
    // Reference: the same half-valued addends summed in f32, from the same half-valued table.
    Tensor ref = table.to(DType::F32);
    ops::scatter_add_rows(src.to(DType::F32), id_t, ref);
    ops::scatter_add_rows(src, id_t, table);
    const auto got = table.to_vector<double>(), want = ref.to_vector<double>();
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        const double w = want[size_t(r * cols + c)];
        // One rounding of the f32 sum: half an ulp of the result's dtype.
        EXPECT_LE(std::abs(got[size_t(r * cols + c)] - w), std::abs(w) * (t == DType::BF16 ? 1.0 / 256 : 1.0 / 2048))
            << "entry [" << r << ", " << c << "]";
      }
    EXPECT_GT(got[0], 3000.0) << "the repeated id's sum stalled";
  }
}

// The same through a model: the tied vocabulary table's bf16 gradient for a token that fills the batch (as
// [MASK] does at large batch sizes) against the f32 model's, same weights and batch.
TEST(MixedPrecision, TiedVocabularyGradientOfARepeatedTokenMatchesF32) {
  const nlohmann::json j = {{"model_type", "danet"},
                            {"vocab_size", 29},
                            {"hidden_size", 16},
                            {"num_hidden_layers", 2},
                            {"num_attention_heads", 2},
                            {"intermediate_size", 32},
                            {"max_position_embeddings", 2048},
                            {"embedding_ln_type", "max_norm"},
                            {"final_ln_type", "max_norm"},
                            {"lm_head_ln_type", "standard_ln"}};
  const models::ModelConfig config = models::ModelConfig::from_json(j);
  const int64_t B = 2, N = 2048, token = 3;
  std::vector<int64_t> ids(size_t(B * N), token), mask(size_t(B * N), 1), labels(size_t(B * N), -1);
  for (int64_t i = 0; i < B * N; ++i) {
    if (i % 64 == 5) ids[size_t(i)] = 4 + (i * 11) % 25;
    if (i % 8 == 0) labels[size_t(i)] = (i * 13) % 29;
  }
  int64_t repeats = 0;
  for (int64_t id : ids) repeats += id == token;
  ASSERT_GE(repeats, 4000);
  models::Batch batch;
  batch.input_ids = Tensor::from_vector(ids, {B, N}, DType::I64);
  batch.attention_mask = Tensor::from_vector(mask, {B, N}, DType::I64);
  batch.mlm_labels = Tensor::from_vector(labels, {B, N}, DType::I64);

  auto f32 = models::build_model(config, DType::F32, Device::cpu(), 5);
  auto half = models::build_model(config, DType::BF16, Device::cpu(), 5);
  auto& p32 = f32->params().all();
  auto& p16 = half->params().all();
  ASSERT_EQ(p32.size(), p16.size());
  for (size_t i = 0; i < p32.size(); ++i) {  // the same (bf16-representable) weights in both
    p16[i].value.copy_(p32[i].value);
    p32[i].value.copy_(p16[i].value);
  }
  auto word_grad = [&](models::Model& m) {
    nn::Context ctx;
    m.forward(batch, ctx);
    m.params().zero_grad();
    m.backward(1.0);
    const nn::Parameter* w = m.params().find("embeddings.word_embeddings.weight");
    EXPECT_NE(w, nullptr);
    return w->grad.select(0, token).contiguous().to(DType::F64);
  };
  const Tensor g32 = word_grad(*f32), g16 = word_grad(*half);
  // bf16 compute through two layers costs about a percent; a stalled sum loses most of the row.
  EXPECT_LT(dense::testing::relative_error(g16, g32), 0.05);
}

// Without CUDA there is nothing to release; the call is still safe and the CPU backend keeps working.
TEST(BackendLifetime, ReleasingBackendsLeavesTheCpuUsable) {
  release_backends();
  Tensor t = Tensor::full({3}, 2.0, DType::F32);
  EXPECT_EQ(ops::sum(t), 6.0);
}

}  // namespace
