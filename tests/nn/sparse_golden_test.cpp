// Sparse attention against the independent PyTorch reference (tests/reference/sparse_reference.py, goldens
// written by make_goldens.py as sparse_<case>.safetensors): the reference builds every pattern as a dense
// mask from the definitions in attention_patterns.h, so comparing build_pattern's graphs with it cell by cell
// cross-checks the pattern code; then graph_attention_forward / _backward on those graphs must reproduce the
// reference's masked attention (o, lse, dq, dk, dv) in f64 to 1e-10 and in f32 to 1e-5, norm-wise relative.
// Whole 2-layer BERTs with `attention: {type: sparse, ...}` are compared like golden_parity_test.cpp's.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>

#include "backend/ops.h"
#include "core/safetensors.h"
#include "golden_model.h"
#include "gradcheck.h"
#include "models/model.h"
#include "nn/attention_graph.h"
#include "nn/attention_patterns.h"
#include "nn/device_graph.h"

using namespace dense;

namespace {

using dense::testing::golden_dir;

// make_goldens.py SPARSE_CASES with attention tensors (score softmax or linear).
const std::vector<std::string> kAttentionCases = {
    "sliding_window_pad",
    "sliding_window_causal_linear",
    "dense_causal_pad",
    "dilated_pad",
    "dilated_causal_linear",
    "dilated_2d",
    "dilated_2d_causal_pad",
    "global_no_window_causal",
    "global_no_window_linear",
    "longformer_pad",
    "longformer_causal",
    "bigbird_no_random_pad",
    "bigbird_no_random_causal_linear",
    "block_local_linear_pad",
    "strided_merged",
    "strided_causal_multihead_pad",
    "strided_causal_merged_linear",
    "strided_interleaved_layer1",
    "fixed_multihead_np2_pad",
    "fixed_multihead_np2_causal",
    "fixed_merged_np2_causal_pad",
    "fixed_interleaved_layer1_causal_linear",
    "fixed_interleaved_layer1_causal",
    "fixed_multihead_no_summary_in_range",
};
// BigBird with random blocks: the golden mask is the deterministic (window + global) part only.
const std::vector<std::string> kBigBirdRandomCases = {"bigbird_random_pattern", "bigbird_random_causal_pattern"};
// make_goldens.py SPARSE_MODEL_CASES.
const std::vector<std::string> kModelCases = {"bert_sparse_sliding_window", "bert_sparse_fixed_interleaved"};

struct OpGolden {
  SafeTensors golden;
  nn::PatternSpec spec;
  nn::AttentionPattern pattern;
  int64_t heads = 0, layer = 0, seq = 0;
  std::string score;
  std::vector<int64_t> mask;  // [heads, seq, seq] 0/1

  bool visible(int64_t h, int64_t i, int64_t j) const { return mask[size_t((h * seq + i) * seq + j)] != 0; }
};

OpGolden load_op(const std::string& name) {
  OpGolden c;
  c.golden = read_safetensors(golden_dir() + "/sparse_" + name + ".safetensors");
  const Tensor& m = c.golden.at("mask");
  EXPECT_EQ(m.dim(), 3);
  c.heads = std::stoll(c.golden.metadata.at("heads"));
  c.layer = std::stoll(c.golden.metadata.at("layer"));
  c.score = c.golden.metadata.at("score");
  c.seq = m.size(1);
  EXPECT_EQ(m.size(0), c.heads);
  EXPECT_EQ(m.size(2), c.seq);
  c.mask = m.to_vector<int64_t>();
  c.spec = nn::parse_pattern(c.golden.metadata.at("pattern"), "golden " + name);
  c.pattern = nn::build_pattern(c.spec, c.seq, c.heads, c.layer);
  return c;
}

nn::CsrGraph reference_graph(const OpGolden& c, int64_t h) {
  return nn::CsrGraph::from_predicate(c.seq, c.seq, [&](int64_t i, int64_t j) { return c.visible(h, i, j); });
}

// The cells where two graphs of one shape differ, "(i, j) C++ 1 / reference 0", at most `limit` of them.
std::string differing_cells(const nn::CsrGraph& got, const nn::CsrGraph& want, int limit = 16) {
  std::ostringstream out;
  int shown = 0, total = 0;
  for (int64_t i = 0; i < want.rows; ++i)
    for (int64_t j = 0; j < want.cols; ++j) {
      const bool g = got.contains(i, j), w = want.contains(i, j);
      if (g == w) continue;
      ++total;
      if (shown++ < limit) out << " (" << i << ", " << j << ") C++ " << g << " / reference " << w << ";";
    }
  out << " " << total << " cells differ";
  return out.str();
}

class PatternVsReference : public ::testing::TestWithParam<std::string> {};

TEST_P(PatternVsReference, GraphsEqualTheReferenceMask) {
  const OpGolden c = load_op(GetParam());
  SCOPED_TRACE(c.golden.metadata.at("pattern"));
  ASSERT_EQ(c.pattern.graphs.size(), c.pattern.shared_across_heads ? size_t(1) : size_t(c.heads));
  int64_t nnz = 0;
  bool all_full = true;  // every block with a visible cell fully visible, in every head
  for (int64_t h = 0; h < c.heads; ++h) {
    const nn::CsrGraph want = reference_graph(c, h);
    const nn::CsrGraph& got = c.pattern.graph(h);
    got.validate("pattern graph");
    EXPECT_EQ(got.rows, c.seq);
    EXPECT_EQ(got.cols, c.seq);
    if (got.rows == c.seq && got.cols == c.seq) {
      EXPECT_TRUE(got == want) << "head " << h << " of layer " << c.layer << ":" << differing_cells(got, want);
    }
    nnz += want.nnz();
    // The block layout: block (bi, bj) set iff some reference cell in it is visible; and what a block-sparse
    // kernel computes (the layout, masked in-block unless exact) is the reference mask again.
    const int64_t b = c.pattern.block, nb = c.pattern.blocks;
    ASSERT_EQ(nb, (c.seq + b - 1) / b);
    const auto layout = c.pattern.layout_of(h);
    ASSERT_EQ(int64_t(layout.size()), nb * nb);
    for (int64_t bi = 0; bi < nb; ++bi)
      for (int64_t bj = 0; bj < nb; ++bj) {
        int64_t seen = 0, cells = 0;
        for (int64_t i = bi * b; i < std::min(c.seq, bi * b + b); ++i)
          for (int64_t j = bj * b; j < std::min(c.seq, bj * b + b); ++j, ++cells) seen += c.visible(h, i, j);
        EXPECT_EQ(layout[size_t(bi * nb + bj)] != 0, seen > 0)
            << "head " << h << " layout block (" << bi << ", " << bj << ")";
        if (seen > 0 && seen < cells) all_full = false;
      }
    const nn::CsrGraph expanded = nn::expand_layout(c.pattern, h);
    EXPECT_TRUE(expanded == want) << "expand_layout, head " << h << ":" << differing_cells(expanded, want);
  }
  EXPECT_EQ(c.pattern.exact_blocks, all_full) << "exact_blocks against the reference's partly visible blocks";
  EXPECT_GT(nnz, 0) << "the reference mask is empty";
}

INSTANTIATE_TEST_SUITE_P(SparseGolden, PatternVsReference, ::testing::ValuesIn(kAttentionCases),
                         [](const auto& info) { return info.param; });

// BigBird's random blocks come from C++ (Philox): the graph must be the reference's window + global part
// plus, in each block row, exactly min(random_blocks, uncovered) distinct blocks that part leaves uncovered
// (causal: among J <= I), as bigbird_random_blocks reports them, each visible in full (causal: j <= i).
class BigBirdVsReference : public ::testing::TestWithParam<std::string> {};

TEST_P(BigBirdVsReference, GraphIsReferenceWindowAndGlobalPlusUncoveredRandomBlocks) {
  const OpGolden c = load_op(GetParam());
  SCOPED_TRACE(c.golden.metadata.at("pattern"));
  ASSERT_EQ(c.spec.kind, nn::PatternKind::BigBird);
  ASSERT_GT(c.spec.random_blocks, 0);
  const int64_t b = c.spec.block, nb = (c.seq + b - 1) / b, r = c.spec.random_blocks;
  int64_t rows_with_a_choice = 0;
  for (int64_t h = 0; h < c.heads; ++h) {
    std::vector<uint8_t> extra(size_t(c.seq * c.seq), 0);  // cells of the random blocks
    for (int64_t bi = 0; bi < nb; ++bi) {
      std::vector<int64_t> uncovered;
      for (int64_t bj = 0; bj < (c.spec.causal ? bi + 1 : nb); ++bj) {
        bool covered = false;
        for (int64_t i = bi * b; i < std::min(c.seq, bi * b + b); ++i)
          for (int64_t j = bj * b; j < std::min(c.seq, bj * b + b); ++j) covered = covered || c.visible(h, i, j);
        if (!covered) uncovered.push_back(bj);
      }
      const std::vector<int64_t> picked = nn::bigbird_random_blocks(c.spec, c.seq, h, bi);
      EXPECT_TRUE(std::is_sorted(picked.begin(), picked.end()) &&
                  std::adjacent_find(picked.begin(), picked.end()) == picked.end())
          << "head " << h << " block row " << bi << ": random blocks not sorted and distinct";
      EXPECT_EQ(int64_t(picked.size()), std::min<int64_t>(r, int64_t(uncovered.size())))
          << "head " << h << " block row " << bi << ": " << uncovered.size() << " uncovered blocks";
      for (int64_t bj : picked) {
        EXPECT_TRUE(std::find(uncovered.begin(), uncovered.end(), bj) != uncovered.end())
            << "head " << h << " block row " << bi << ": random block " << bj << " is covered or not allowed";
        for (int64_t i = bi * b; i < std::min(c.seq, bi * b + b); ++i)
          for (int64_t j = bj * b; j < std::min(c.seq, bj * b + b); ++j)
            if (!c.spec.causal || j <= i) extra[size_t(i * c.seq + j)] = 1;
      }
      rows_with_a_choice += int64_t(uncovered.size()) > r;
    }
    const nn::CsrGraph want = nn::CsrGraph::from_predicate(
        c.seq, c.seq, [&](int64_t i, int64_t j) { return c.visible(h, i, j) || extra[size_t(i * c.seq + j)] != 0; });
    const nn::CsrGraph& got = c.pattern.graph(h);
    EXPECT_TRUE(got == want) << "head " << h << ":" << differing_cells(got, want);
  }
  EXPECT_GT(rows_with_a_choice, 0)
      << "no block row draws from more candidates than it takes: the case tests nothing random";
}

INSTANTIATE_TEST_SUITE_P(SparseGolden, BigBirdVsReference, ::testing::ValuesIn(kBigBirdRandomCases),
                         [](const auto& info) { return info.param; });

// ---- the kernels on the patterns' graphs ----------------------------------------------------------------

// lse: the same rows -inf (no visible valid key), the finite ones within tol norm-wise.
void expect_lse_matches(const Tensor& got_t, const Tensor& want_t, double tol) {
  const auto got = got_t.to_vector<double>(), want = want_t.to_vector<double>();
  ASSERT_EQ(got.size(), want.size());
  std::vector<double> g, w;
  int64_t empty = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::isinf(want[i])) {
      EXPECT_TRUE(std::isinf(got[i]) && got[i] < 0) << "lse[" << i << "] = " << got[i] << ", reference -inf";
      ++empty;
    } else {
      EXPECT_TRUE(std::isfinite(got[i])) << "lse[" << i << "] = " << got[i] << ", reference " << want[i];
      g.push_back(got[i]);
      w.push_back(want[i]);
    }
  }
  const Tensor gt = Tensor::from_vector<double>(g, {int64_t(g.size())}, DType::F64);
  const Tensor wt = Tensor::from_vector<double>(w, {int64_t(w.size())}, DType::F64);
  if (!w.empty()) {
    EXPECT_LT(dense::testing::relative_error(gt, wt), tol) << "lse";
  }
}

class KernelVsReference : public ::testing::TestWithParam<std::tuple<std::string, DType>> {};

TEST_P(KernelVsReference, KernelMatchesReferenceOnThePatternGraph) {
  const auto& [name, dtype] = GetParam();
  const OpGolden c = load_op(name);
  SCOPED_TRACE(c.golden.metadata.at("pattern"));
  ASSERT_TRUE(c.score == "softmax" || c.score == "linear") << c.score;
  const GraphScore score = c.score == "softmax" ? GraphScore::Softmax : GraphScore::Linear;
  const SafeTensors& g = c.golden;
  const Tensor q = g.at("q").to(dtype), k = g.at("k").to(dtype), v = g.at("v").to(dtype), dout = g.at("dout").to(dtype);
  Tensor key_valid;
  if (const Tensor* kv = g.find("key_valid")) key_valid = kv->to(dtype);
  const Tensor* kvp = key_valid.defined() ? &key_valid : nullptr;
  const int64_t B = q.size(0), N = q.size(1), H = c.heads, e = q.size(2) / H;
  ASSERT_EQ(N, c.seq);
  const double scale = 1.0 / std::sqrt(double(e));
  const double tol = dtype == DType::F64 ? 1e-10 : 1e-5;
  const DType stats = ops::rownorm_stats_dtype(dtype);

  // The pattern's graphs as uploaded, and as the models get them (PatternGraphCache: the implicit band for
  // sliding windows).
  const nn::DeviceGraph uploaded = nn::DeviceGraph::upload(c.pattern.graphs, Device::cpu());
  nn::PatternGraphCache cache;
  const nn::DeviceGraph& cached = cache.get(c.spec, N, H, c.layer, Device::cpu());
  for (const auto& [what, dg] :
       {std::pair<const char*, const nn::DeviceGraph*>{"uploaded CSR", &uploaded}, {"PatternGraphCache", &cached}}) {
    SCOPED_TRACE(what);
    const double nan = std::numeric_limits<double>::quiet_NaN();  // poisoned: every element must be written
    Tensor o = Tensor::full(q.shape(), nan, dtype), lse = Tensor::full({B, H, N}, nan, stats);
    ops::graph_attention_forward(score, q, k, v, dg->forward_ref(), kvp, H, scale, o, &lse);
    EXPECT_LT(dense::testing::relative_error(o, g.at("o")), tol) << "o";
    if (score == GraphScore::Softmax) expect_lse_matches(lse, g.at("lse"), tol);
    Tensor dq = Tensor::full(q.shape(), nan, dtype), dk = Tensor::full(k.shape(), nan, dtype),
           dv = Tensor::full(v.shape(), nan, dtype);
    ops::graph_attention_backward(score, q, k, v, dg->forward_ref(), dg->transposed_ref(), kvp, H, scale, o, dout,
                                  score == GraphScore::Softmax ? &lse : nullptr, dq, dk, dv);
    EXPECT_LT(dense::testing::relative_error(dq, g.at("dq")), tol) << "dq";
    EXPECT_LT(dense::testing::relative_error(dk, g.at("dk")), tol) << "dk";
    EXPECT_LT(dense::testing::relative_error(dv, g.at("dv")), tol) << "dv";
  }
}

INSTANTIATE_TEST_SUITE_P(SparseGolden, KernelVsReference,
                         ::testing::Combine(::testing::ValuesIn(kAttentionCases),
                                            ::testing::Values(DType::F64, DType::F32)),
                         [](const auto& info) {
                           return std::get<0>(info.param) + "_" + std::string(dtype_name(std::get<1>(info.param)));
                         });

// ---- whole models ------------------------------------------------------------------------------------

class ModelVsReference : public ::testing::TestWithParam<std::tuple<std::string, DType>> {};

TEST_P(ModelVsReference, OutputsAndGradientsMatchReference) {
  const auto& [name, dtype] = GetParam();
  const SafeTensors golden = read_safetensors(golden_dir() + "/" + name + ".safetensors");
  const models::ModelConfig config =
      models::ModelConfig::from_json(nlohmann::json::parse(golden.metadata.at("config")));
  ASSERT_TRUE(config.sparse_pattern().has_value()) << "the case's config has no sparse attention";
  auto model = models::build_model(config, dtype, Device::cpu(), 7);
  dense::testing::check_model_against_golden(*model, golden, dtype);
}

INSTANTIATE_TEST_SUITE_P(SparseGolden, ModelVsReference,
                         ::testing::Combine(::testing::ValuesIn(kModelCases),
                                            ::testing::Values(DType::F64, DType::F32)),
                         [](const auto& info) {
                           return std::get<0>(info.param) + "_" + std::string(dtype_name(std::get<1>(info.param)));
                         });

TEST(SparseGolden, EveryReferenceCaseIsTested) {
  std::ifstream in(golden_dir() + "/sparse_cases.txt");
  ASSERT_TRUE(in.good()) << "missing " << golden_dir() << "/sparse_cases.txt (run tests/reference/make_goldens.py)";
  std::vector<std::string> listed;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) listed.push_back(line);
  std::vector<std::string> tested = kAttentionCases;
  tested.insert(tested.end(), kBigBirdRandomCases.begin(), kBigBirdRandomCases.end());
  tested.insert(tested.end(), kModelCases.begin(), kModelCases.end());
  std::sort(listed.begin(), listed.end());
  std::sort(tested.begin(), tested.end());
  EXPECT_EQ(listed, tested);
}

}  // namespace
