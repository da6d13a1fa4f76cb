// Attention patterns: every O(nnz) builder against an O(N²) predicate written here from the papers'
// definitions (Child et al. 2019, BigBird, Longformer, KLab's dilated kernels), block layouts against the
// element graphs, BigBird's randomness, factorised-head modes, the p + 1 hop claim, parsing and errors.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "nn/attention_patterns.h"

using namespace dense;
using namespace dense::nn;

namespace {

PatternSpec P(const std::string& text) { return parse_pattern(text, "test"); }

// The reference: query i sees key j in head h of layer r, straight from the definitions.
bool visible(const PatternSpec& s, int64_t n, int64_t h, int64_t r, int64_t i, int64_t j,
             std::map<std::pair<int64_t, int64_t>, std::vector<int64_t>>& random_cache) {
  if (s.causal && j > i) return false;
  const int64_t d = i - j, ad = std::llabs(d), b = s.block;
  const auto is_global = [&](int64_t t) {
    for (int64_t g : s.global_tokens)
      if (g == t) return true;
    return false;
  };
  switch (s.kind) {
    case PatternKind::Dense: return true;
    case PatternKind::SlidingWindow: return ad <= s.window;
    case PatternKind::Dilated: return ad <= s.window * s.dilation && d % s.dilation == 0;
    case PatternKind::Dilated2D: return i / b == j / b && (i % b) % s.dilation == (j % b) % s.dilation;
    case PatternKind::BlockLocal: return i / b == j / b;
    case PatternKind::Global: return is_global(i) || is_global(j) || (s.window >= 0 && ad <= s.window);
    case PatternKind::Longformer: return is_global(i) || is_global(j) || ad <= s.window;
    case PatternKind::BigBird: {
      const int64_t I = i / b, J = j / b;
      if (s.window_blocks > 0 && std::llabs(I - J) <= s.window_blocks / 2) return true;
      if (I < s.global_blocks || J < s.global_blocks) return true;
      auto it = random_cache.find({h, I});
      if (it == random_cache.end()) it = random_cache.emplace(std::pair{h, I}, bigbird_random_blocks(s, n, h, I)).first;
      for (int64_t x : it->second)
        if (x == J) return true;
      return false;
    }
    case PatternKind::Strided:
    case PatternKind::Fixed: {
      const int64_t l = s.stride;
      bool a1, a2;
      int64_t v = 0;  // fixed's summary sub-block
      if (s.kind == PatternKind::Strided) {
        a1 = s.causal ? (i - l <= j && j <= i) : ad < l;
        a2 = d % l == 0;
      } else {
        a1 = i / l == j / l;
        if (s.heads_mode == FactorisedHeads::Multihead)
          v = (h / 2) % s.num_patterns;
        else
          v = h % s.num_patterns;
        const int64_t m = j % l;
        a2 = l - (v + 1) * s.summary <= m && m < l - v * s.summary;
      }
      switch (s.heads_mode) {
        case FactorisedHeads::Merged: return a1 || a2;
        case FactorisedHeads::Multihead: return h % 2 == 0 ? a1 : a2;
        case FactorisedHeads::Interleaved: return r % 2 == 0 ? a1 : a2;
      }
    }
  }
  ADD_FAILURE() << "unhandled kind";
  return false;
}

CsrGraph reference(const PatternSpec& s, int64_t n, int64_t h, int64_t r) {
  std::map<std::pair<int64_t, int64_t>, std::vector<int64_t>> cache;
  return CsrGraph::from_predicate(n, n, [&](int64_t i, int64_t j) { return visible(s, n, h, r, i, j, cache); });
}

// Patterns whose parameters fit sequence length n (global tokens must be < n).
std::vector<std::string> specs_for(int64_t n) {
  const std::string mid = std::to_string(n / 2), last = std::to_string(n - 1);
  const std::string globals = n >= 3 ? "0+" + mid + "+" + last : "0", first3 = n >= 3 ? "0..2" : "0";
  return {
      "dense:block=16",
      "sliding_window:window=0,block=8",
      "sliding_window:window=3,block=8",
      "dilated:window=2,dilation=3,block=16",
      "dilated:window=4,dilation=1,block=5",
      "dilated_2d:block=16,dilation=3",
      "dilated_2d:block=10,dilation=4",
      "dilated_2d:block=8,dilation=1",
      "global:global_tokens=" + globals + ",block=8",
      "global:global_tokens=" + globals + ",window=2,block=16",
      "longformer:window=4,global_tokens=" + globals + ",block=8",
      "longformer:window=1,global_tokens=" + first3 + ",block=32",
      "bigbird:block=8,window_blocks=3,global_blocks=1,random_blocks=2,seed=5",
      "bigbird:block=16,window_blocks=1,global_blocks=0,random_blocks=3,seed=9",
      "bigbird:block=6,window_blocks=0,global_blocks=2,random_blocks=1",
      "bigbird:block=8,window_blocks=5,global_blocks=1,random_blocks=0",
      "block_local:block=16",
      "block_local:block=7",
      "strided:stride=8,block=8",
      "strided:stride=5,block=16,heads_mode=multihead",
      "strided:stride=8,block=8,heads_mode=interleaved",
      "fixed:stride=16,summary=4,block=16",
      "fixed:stride=16,summary=3,num_patterns=3,block=8",
      "fixed:stride=10,summary=2,num_patterns=2,heads_mode=multihead,block=16",
      "fixed:stride=8,summary=2,num_patterns=4,heads_mode=interleaved,block=8",
      "fixed:stride=12,summary=5,heads_mode=multihead,block=12",
  };
}

// Every set block of the layout fully visible, by counting cells.
bool blocks_full(const CsrGraph& g, std::span<const uint8_t> layout, int64_t block) {
  const int64_t n = g.rows, nb = (n + block - 1) / block;
  std::vector<int64_t> count(static_cast<size_t>(nb * nb), 0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t p = g.row_ptr[i]; p < g.row_ptr[i + 1]; ++p) ++count[(i / block) * nb + g.col[p] / block];
  for (int64_t bi = 0; bi < nb; ++bi)
    for (int64_t bj = 0; bj < nb; ++bj) {
      const int64_t area = std::min(block, n - bi * block) * std::min(block, n - bj * block);
      if (layout[bi * nb + bj] && count[bi * nb + bj] != area) return false;
    }
  return true;
}

// Shortest-path hop count from every query to every key (edges i -> j for j in row i); -1 if unreachable. For
// causal graphs only keys t <= src must be reached.
int64_t max_hops(const CsrGraph& g, bool causal = false) {
  int64_t worst = 0;
  for (int64_t src = 0; src < g.rows; ++src) {
    std::vector<int64_t> dist(static_cast<size_t>(g.rows), -1);
    std::deque<int64_t> queue{src};
    dist[src] = 0;
    while (!queue.empty()) {
      const int64_t u = queue.front();
      queue.pop_front();
      for (int64_t p = g.row_ptr[u]; p < g.row_ptr[u + 1]; ++p)
        if (dist[g.col[p]] < 0) dist[g.col[p]] = dist[u] + 1, queue.push_back(g.col[p]);
    }
    for (int64_t t = 0; t < (causal ? src + 1 : g.rows); ++t) {
      if (dist[t] < 0) return -1;
      worst = std::max(worst, dist[t]);
    }
  }
  return worst;
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const dense::Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(AttentionPatterns, BuildersMatchThePaperDefinitions) {
  int64_t checked = 0;
  for (int64_t n : {1, 7, 64, 100, 130}) {
    for (const std::string& text : specs_for(n)) {
      for (bool causal : {false, true}) {
        PatternSpec s = P(text);
        s.causal = causal;
        for (int64_t heads : {1, 3, 4}) {
          for (int64_t layer : {0, 1}) {
            SCOPED_TRACE(describe(s) + " N=" + std::to_string(n) + " H=" + std::to_string(heads) +
                         " layer=" + std::to_string(layer));
            const AttentionPattern p = build_pattern(s, n, heads, layer);
            ASSERT_EQ(p.graphs.size(), p.shared_across_heads ? 1u : size_t(heads));
            ASSERT_EQ(p.blocks, (n + s.block - 1) / s.block);
            ASSERT_EQ(p.layout.size(), p.graphs.size() * size_t(p.blocks * p.blocks));
            for (int64_t h = 0; h < heads; ++h) {
              const CsrGraph& g = p.graph(h);
              g.validate("pattern");  // shape, rows strictly increasing, columns in range
              ASSERT_EQ(g, reference(s, n, h, layer)) << "head " << h;
              if (causal) {
                for (int64_t i = 0; i < n; ++i)
                  for (int64_t q = g.row_ptr[i]; q < g.row_ptr[i + 1]; ++q) ASSERT_LE(g.col[q], i);
              }
              ++checked;
            }
          }
        }
      }
    }
  }
  EXPECT_GT(checked, 2000);
}

TEST(AttentionPatterns, CsrAndBlockLayoutsAgree) {
  for (int64_t n : {1, 7, 64, 100, 130}) {
    for (const std::string& text : specs_for(n)) {
      for (bool causal : {false, true}) {
        PatternSpec s = P(text);
        s.causal = causal;
        SCOPED_TRACE(describe(s) + " N=" + std::to_string(n));
        const int64_t heads = 4;
        const AttentionPattern p = build_pattern(s, n, heads, 1);
        bool all_full = true;
        for (int64_t h = 0; h < heads; ++h) {
          const CsrGraph& g = p.graph(h);
          const auto layout = p.layout_of(h);
          // layout -> elements == elements, with the in-block mask only where blocks are partial.
          ASSERT_EQ(expand_layout(p, h), g);
          // A block is set iff some element of it is visible.
          const int64_t nb = p.blocks;
          for (int64_t bi = 0; bi < nb; ++bi)
            for (int64_t bj = 0; bj < nb; ++bj) {
              bool any = false;
              for (int64_t i = bi * s.block; i < std::min(n, (bi + 1) * s.block) && !any; ++i)
                for (int64_t j = bj * s.block; j < std::min(n, (bj + 1) * s.block) && !any; ++j) any = g.contains(i, j);
              ASSERT_EQ(p.block_set(h, bi, bj), any) << "block " << bi << "," << bj;
            }
          const bool full = blocks_full(g, layout, s.block);
          all_full = all_full && full;
          if (full) {
            ASSERT_EQ(graph_from_layout(layout, n, s.block), g);  // the layout alone is the pattern
          }
        }
        ASSERT_EQ(p.exact_blocks, all_full);
        const std::vector<uint8_t> all = p.layout_all_heads();
        ASSERT_EQ(all.size(), size_t(heads * p.blocks * p.blocks));
        for (int64_t h = 0; h < heads; ++h)
          ASSERT_TRUE(std::equal(p.layout_of(h).begin(), p.layout_of(h).end(), all.begin() + h * p.blocks * p.blocks));
      }
    }
  }
}

TEST(AttentionPatterns, ExactBlocksWhereTheBlocksAlignWithThePattern) {
  EXPECT_TRUE(build_pattern(P("block_local:block=16"), 100, 1).exact_blocks);
  EXPECT_TRUE(build_pattern(P("dense:block=16"), 100, 1).exact_blocks);
  EXPECT_TRUE(build_pattern(P("bigbird:block=8,random_blocks=2"), 100, 2).exact_blocks);
  EXPECT_TRUE(build_pattern(P("fixed:stride=16,summary=16,block=16"), 100, 1).exact_blocks);
  EXPECT_FALSE(build_pattern(P("bigbird:block=8,causal=true"), 100, 1).exact_blocks);  // diagonal blocks
  EXPECT_FALSE(build_pattern(P("sliding_window:window=3,block=8"), 100, 1).exact_blocks);
  EXPECT_FALSE(build_pattern(P("fixed:stride=16,summary=4,block=16"), 100, 1).exact_blocks);
}

TEST(AttentionPatterns, MaskByLayoutDropsBlocksOutsideIt) {
  const CsrGraph dense = build_pattern(P("dense:block=4"), 10, 1).graphs[0];
  std::vector<uint8_t> layout(9, 0);
  layout[0 * 3 + 2] = 1;  // queries 0..3 see keys 8..9 only
  const CsrGraph g = graph_from_layout(layout, 10, 4, &dense);
  EXPECT_EQ(g, CsrGraph::from_predicate(10, 10, [](int64_t i, int64_t j) { return i < 4 && j >= 8; }));
  EXPECT_EQ(graph_from_layout(layout, 10, 4), g);
  EXPECT_NE(error_of([&] { graph_from_layout(layout, 13, 4); }).find("expected 4 x 4 blocks"), std::string::npos);
}

TEST(AttentionPatterns, LongSequencesBuildInLinearTime) {
  const int64_t n = int64_t(1) << 20;
  const auto t0 = std::chrono::steady_clock::now();
  const AttentionPattern p = build_pattern(P("sliding_window:window=16,block=4096"), n, 8);
  const AttentionPattern q = build_pattern(P("dilated:window=8,dilation=4,block=4096,causal=true"), n, 8);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(p.shared_across_heads);
  EXPECT_EQ(p.graphs[0].nnz(), n * 33 - 2 * (16 * 17 / 2));
  EXPECT_EQ(p.graphs[0].degree(n / 2), 33);
  EXPECT_EQ(p.graphs[0].degree(0), 17);
  EXPECT_EQ(q.graphs[0].degree(n - 1), 9);
  EXPECT_EQ(q.graphs[0].col[q.graphs[0].row_ptr[n - 1]], n - 1 - 32);
  // A quadratic builder would take hours here; the bound leaves room for a loaded machine.
  EXPECT_LT(seconds, 30.0);
  std::printf("  N = 2^20: sliding window + dilated built in %.2f s\n", seconds);
}

TEST(AttentionPatterns, BigBirdIsAPureFunctionOfSeedLengthAndHead) {
  const PatternSpec s = P("bigbird:block=8,window_blocks=3,global_blocks=1,random_blocks=3,seed=11");
  const int64_t n = 256;
  const AttentionPattern a = build_pattern(s, n, 4), b = build_pattern(s, n, 4);
  ASSERT_FALSE(a.shared_across_heads);
  for (int64_t h = 0; h < 4; ++h) EXPECT_EQ(a.graph(h), b.graph(h));
  // Head h's pattern does not depend on how many heads there are.
  const AttentionPattern two = build_pattern(s, n, 2);
  EXPECT_EQ(two.graph(1), a.graph(1));
  // Different heads, different seeds: different random blocks.
  EXPECT_NE(a.graph(0), a.graph(1));
  EXPECT_NE(a.graph(2), a.graph(3));
  PatternSpec s2 = s;
  s2.seed = 12;
  EXPECT_NE(build_pattern(s2, n, 1).graph(0), a.graph(0));
  // The random blocks: as many as asked for, distinct, outside the window and global blocks.
  const int64_t nb = n / 8;
  for (int64_t h = 0; h < 4; ++h)
    for (int64_t row = 0; row < nb; ++row) {
      const std::vector<int64_t> r = bigbird_random_blocks(s, n, h, row);
      if (row < 1) {
        EXPECT_TRUE(r.empty());  // a global row already sees everything
        continue;
      }
      const int64_t covered = 1 + (std::min(nb - 1, row + 1) - std::max<int64_t>(1, row - 1) + 1);
      ASSERT_EQ(int64_t(r.size()), std::min<int64_t>(3, nb - covered));
      for (size_t k = 0; k < r.size(); ++k) {
        EXPECT_TRUE(k == 0 || r[k - 1] < r[k]);
        EXPECT_GE(r[k], 1);
        EXPECT_TRUE(r[k] < row - 1 || r[k] > row + 1);
        EXPECT_LT(r[k], nb);
      }
    }
  // Causal: random key blocks come from J <= I, and fewer when fewer are left.
  PatternSpec c = s;
  c.causal = true;
  for (int64_t row = 1; row < nb; ++row) {
    const std::vector<int64_t> r = bigbird_random_blocks(c, n, 0, row);
    ASSERT_EQ(int64_t(r.size()), std::clamp<int64_t>(row - 2, 0, 3)) << row;
    for (int64_t x : r) EXPECT_TRUE(x >= 1 && x < row - 1);
  }
  // The draws are spread over the candidates (all 28 candidate blocks of row 16 show up across heads).
  std::set<int64_t> seen;
  for (int64_t h = 0; h < 200; ++h)
    for (int64_t x : bigbird_random_blocks(s, n, h, 16)) seen.insert(x);
  EXPECT_EQ(seen.size(), size_t(nb - 4));
}

TEST(AttentionPatterns, FactorisedHeadModes) {
  for (const char* base : {"strided:stride=8", "fixed:stride=8,summary=2"}) {
    for (bool causal : {false, true}) {
      PatternSpec merged = P(base), multi = P(base), inter = P(base);
      merged.causal = multi.causal = inter.causal = causal;
      multi.heads_mode = FactorisedHeads::Multihead;
      inter.heads_mode = FactorisedHeads::Interleaved;
      SCOPED_TRACE(describe(merged));
      const int64_t n = 90;
      const AttentionPattern m = build_pattern(merged, n, 4), mh = build_pattern(multi, n, 4);
      ASSERT_TRUE(m.shared_across_heads);
      ASSERT_FALSE(mh.shared_across_heads);
      // merged == the union of the multihead heads; A1 in even heads, A2 in odd ones.
      EXPECT_EQ(CsrGraph::unite(mh.graph(0), mh.graph(1)), m.graphs[0]);
      EXPECT_EQ(mh.graph(0), mh.graph(2));
      EXPECT_EQ(mh.graph(1), mh.graph(3));
      // interleaved: layer 0 (and every even layer) uses A1 in every head, odd layers A2.
      for (int64_t layer : {0, 1, 2, 3}) {
        const AttentionPattern il = build_pattern(inter, n, 4, layer);
        ASSERT_TRUE(il.shared_across_heads);
        EXPECT_EQ(il.graphs[0], mh.graph(layer % 2)) << "layer " << layer;
      }
      // The other modes ignore the layer.
      EXPECT_EQ(build_pattern(merged, n, 4, 1).graphs[0], m.graphs[0]);
    }
  }
  // Fixed with per-head summary sub-blocks: the union over heads is the same in merged and multihead mode
  // once every sub-block is used (H >= 2·num_patterns).
  const PatternSpec fm = P("fixed:stride=12,summary=3,num_patterns=2");
  PatternSpec fh = fm;
  fh.heads_mode = FactorisedHeads::Multihead;
  const AttentionPattern a = build_pattern(fm, 60, 4), b = build_pattern(fh, 60, 4);
  ASSERT_FALSE(a.shared_across_heads);
  EXPECT_NE(a.graph(0), a.graph(1));
  EXPECT_EQ(a.graph(0), a.graph(2));
  EXPECT_NE(b.graph(1), b.graph(3));  // the odd (A2) heads take sub-blocks 0 and 1
  CsrGraph ua = a.graph(0), ub = b.graph(0);
  for (int64_t h = 1; h < 4; ++h) ua = CsrGraph::unite(ua, a.graph(h)), ub = CsrGraph::unite(ub, b.graph(h));
  EXPECT_EQ(ua, ub);
  // Head 1's summary columns are the sub-block before the last: offsets [6, 9) of each block of 12.
  const CsrGraph& g = a.graph(1);
  for (int64_t q = g.row_ptr[30]; q < g.row_ptr[31]; ++q) {
    const int64_t j = g.col[q];
    EXPECT_TRUE(j / 12 == 30 / 12 || (j % 12 >= 6 && j % 12 < 9)) << j;
  }
}

TEST(AttentionPatterns, MergedHeadsReachEveryKeyInAtMostThreeHops) {
  // Child et al.: with p = 2 factorised steps every position reaches every other in at most p + 1 hops.
  for (int64_t n : {64, 71, 97}) {
    SCOPED_TRACE("N=" + std::to_string(n));
    const int64_t hs = max_hops(build_pattern(P("strided:stride=8"), n, 1).graphs[0]);
    EXPECT_GE(hs, 1);
    EXPECT_LE(hs, 3);
    EXPECT_LE(max_hops(build_pattern(P("strided:stride=8,causal=true"), n, 1).graphs[0], true), 3);
    EXPECT_GE(max_hops(build_pattern(P("strided:stride=8,causal=true"), n, 1).graphs[0], true), 1);
  }
  // Fixed needs summary columns in every block, so N = 64 and 71 (the last block, 64..70, holds 70).
  for (int64_t n : {64, 71}) {
    SCOPED_TRACE("N=" + std::to_string(n));
    const int64_t hf = max_hops(build_pattern(P("fixed:stride=8,summary=2"), n, 1).graphs[0]);
    EXPECT_GE(hf, 1);
    EXPECT_LE(hf, 3);
    const int64_t hc = max_hops(build_pattern(P("fixed:stride=8,summary=2,causal=true"), n, 1).graphs[0], true);
    EXPECT_GE(hc, 1);
    EXPECT_LE(hc, 3);
  }
  // A last block too short to hold its summary columns (64..67 of a block of 8 with summary 6..7) is seen
  // only from inside itself: the claim needs N to reach each block's summary.
  EXPECT_EQ(max_hops(build_pattern(P("fixed:stride=8,summary=2"), 68, 1).graphs[0]), -1);
  // Without the second step it does not hold at all.
  EXPECT_EQ(max_hops(build_pattern(P("fixed:stride=8,summary=2,heads_mode=multihead"), 64, 2).graph(0)), -1);
}

TEST(AttentionPatterns, ParseAndDescribeRoundTrip) {
  std::vector<std::string> texts = specs_for(130);
  texts.push_back("global:global_tokens=5+0+1+2+9..11+3,causal=true");
  texts.push_back("bigbird:seed=18446744073709551615");
  for (const std::string& text : texts) {
    for (bool causal : {false, true}) {
      PatternSpec s = P(text);
      s.causal = causal;
      SCOPED_TRACE(text);
      const std::string d = describe(s);
      EXPECT_EQ(P(d), s) << d;
      EXPECT_EQ(parse_pattern_spec(pattern_key_values(s), "test"), s);
      EXPECT_EQ(describe(P(d)), d);
      EXPECT_EQ(d.rfind("kind=", 0), 0u);
    }
  }
  EXPECT_EQ(describe(P("global:global_tokens=5+0+1+2+9..11+3")),
            "kind=global,global_tokens=0..3+5+9..11,causal=false,block=64");
  EXPECT_EQ(describe(P("fixed:stride=128,summary=16")),
            "kind=fixed,stride=128,summary=16,num_patterns=1,heads_mode=merged,causal=false,block=64");
  EXPECT_EQ(describe(P("bigbird")),
            "kind=bigbird,block=64,window_blocks=3,global_blocks=1,random_blocks=1,seed=0,causal=false");
  // The three spellings of one pattern.
  EXPECT_EQ(P("fixed:stride=128,summary=16,causal=true"), P("kind=fixed,stride=128,summary=16,causal=true"));
  EXPECT_EQ(P(" fixed : stride = 128 , summary=16 "), P("fixed:stride=128,summary=16"));
  EXPECT_EQ(P("dense"), PatternSpec{});
  EXPECT_EQ(P("dense:"), PatternSpec{});
  const PatternSpec f = P("fixed:stride=128,summary=16,causal=1,heads_mode=interleaved,num_patterns=4,block=32");
  EXPECT_EQ(f.kind, PatternKind::Fixed);
  EXPECT_EQ(f.stride, 128);
  EXPECT_EQ(f.summary, 16);
  EXPECT_EQ(f.num_patterns, 4);
  EXPECT_EQ(f.block, 32);
  EXPECT_TRUE(f.causal);
  EXPECT_EQ(f.heads_mode, FactorisedHeads::Interleaved);
}

TEST(AttentionPatterns, BadSpecsNameTheKey) {
  const auto err = [](const std::string& text) { return error_of([&] { parse_pattern(text, "model.pattern"); }); };
  const auto expect_has = [](const std::string& message, std::vector<std::string> parts) {
    for (const auto& part : parts) EXPECT_NE(message.find(part), std::string::npos) << message << "\n  lacks: " << part;
  };
  expect_has(err("sliding_window:windw=3"), {"model.pattern", "unknown key 'windw'", "did you mean 'window'"});
  expect_has(err("sliding_window:stride=3,window=1"), {"'stride'", "does not apply to kind=sliding_window", "window"});
  expect_has(err("fixd:stride=3"), {"unknown pattern 'fixd'", "did you mean 'fixed'"});
  expect_has(err("window=3"), {"model.pattern", "'kind' is required"});
  expect_has(err("fixed:stride=16"), {"needs key 'summary'"});
  expect_has(err("sliding_window"), {"needs key 'window'"});
  expect_has(err("fixed:stride=16,summary=17"), {"summary", "[1, stride = 16]", "17"});
  expect_has(err("fixed:stride=16,summary=8,num_patterns=3"), {"num_patterns", "at most 2"});
  expect_has(err("fixed:stride=16,summary=0"), {"summary", "integer >= 1", "'0'"});
  expect_has(err("strided:stride=0"), {"stride", "integer >= 1"});
  expect_has(err("strided:stride=abc"), {"stride", "integer", "'abc'"});
  expect_has(err("strided:stride=4,heads_mode=multi"), {"heads_mode", "'multi'", "did you mean 'multihead'"});
  expect_has(err("sliding_window:window=-1"), {"window", "integer >= 0", "'-1'"});
  expect_has(err("sliding_window:window=1,block=0"), {"block", "integer >= 1"});
  expect_has(err("sliding_window:window=99999999999"), {"window", "2^31"});
  expect_has(err("dense:causal=maybe"), {"causal", "true or false", "maybe"});
  expect_has(err("dense:heads_mode=multihead"), {"heads_mode", "does not apply to kind=dense"});
  expect_has(err("bigbird:window_blocks=2"), {"window_blocks", "odd"});
  expect_has(err("bigbird:window_blocks=0,global_blocks=0,random_blocks=0"), {"bigbird", "sees nothing"});
  expect_has(err("bigbird:seed=-4"), {"seed", "'-4'"});
  expect_has(err("dilated_2d:block=4,dilation=5"), {"dilation", "[1, block = 4]"});
  expect_has(err("dilated:window=2"), {"needs key 'dilation'"});
  expect_has(err("global:global_tokens=3..1"), {"global_tokens", "'3..1'"});
  expect_has(err("global:global_tokens=1++2"), {"global_tokens", "got ''"});
  expect_has(err("global:global_tokens=0..99999999"), {"global_tokens", "more than"});
  expect_has(err("sliding_window:window=1,window=2"), {"'window' given twice"});
  expect_has(err("kind=dense,block"), {"key=value", "'block'"});
  expect_has(err("dense:block=8,"), {"ends with ','"});
  // Map form: the same checks.
  expect_has(error_of([] {
               parse_pattern_spec({{"kind", "strided"}, {"strid", "4"}}, "cfg");
             }),
             {"cfg", "unknown key 'strid'", "did you mean 'stride'"});
  // Checks that need N, heads, and direct struct use.
  const auto build_err = [](const PatternSpec& s, int64_t n, int64_t h) {
    return error_of([&] { build_pattern(s, n, h); });
  };
  expect_has(build_err(P("global:global_tokens=0+9"), 5, 1), {"global_tokens", "9", "seq_len = 5"});
  expect_has(build_err(P("dense"), 0, 1), {"seq_len"});
  expect_has(build_err(P("dense"), int64_t(1) << 31, 1), {"seq_len"});
  expect_has(build_err(P("dense"), 4, 0), {"heads"});
  PatternSpec raw;
  raw.kind = PatternKind::Strided;
  expect_has(build_err(raw, 10, 1), {"stride", ">= 1", "got 0"});
  raw.kind = PatternKind::Longformer;
  raw.window = 2;
  expect_has(build_err(raw, 10, 1), {"global_tokens"});
  raw.global_tokens = {-3};
  expect_has(build_err(raw, 10, 1), {"global_tokens", "-3"});
}

TEST(AttentionPatterns, SummariesCountHeadsAndBlocks) {
  const AttentionPattern p = build_pattern(P("block_local:block=4"), 10, 3);
  const PatternSummary s = summarize(p);
  EXPECT_EQ(s.heads, 3);
  EXPECT_EQ(s.nnz, 3 * (4 * 4 + 4 * 4 + 2 * 2));
  EXPECT_EQ(s.min_degree, 2);
  EXPECT_EQ(s.max_degree, 4);
  EXPECT_DOUBLE_EQ(s.mean_degree, 36.0 / 10.0);
  EXPECT_DOUBLE_EQ(s.density, 36.0 / 100.0);
  EXPECT_EQ(s.blocks_set, 3 * 3);
  EXPECT_EQ(s.blocks_total, 3 * 9);
  EXPECT_EQ(s.empty_rows, 0);
  // Causal fixed A2 heads see nothing before the first summary column.
  const AttentionPattern f = build_pattern(P("fixed:stride=8,summary=2,causal=true,heads_mode=multihead"), 16, 2);
  EXPECT_EQ(summarize_head(f, 1).empty_rows, 6);
  EXPECT_EQ(summarize_head(f, 0).empty_rows, 0);
  EXPECT_EQ(summarize(f).empty_rows, 6);
}
