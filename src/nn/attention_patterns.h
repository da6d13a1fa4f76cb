#pragma once
// Sparse attention patterns: which keys each query sees. Every pattern is written once, here, and yields both
// forms the kernels take (docs/sparse-attention.md):
//   * an element-level CsrGraph per head (graph-processing attention, masked DenseAttention, CQS workers);
//   * a block layout [heads, nb, nb] of 0/1 bytes (stored once per distinct graph) for block-sparse kernels
//     (OpenAI blocksparse, DeepSpeed, FlashAttention block-sparse), where the element graph doubles as the
//     in-block mask when blocks are only partly visible.
// The graphs are built row by row in O(nnz) from closed forms (a window of 16 over 2^20 tokens: about half a
// second on one core); only the dense layout costs nb² bytes per distinct head.
//
// Definitions (i = query, j = key, N = sequence length; `causal` keeps only j <= i of each, except where
// noted). All are bidirectional unless causal=true, because our models are encoders.
//   dense           every j.
//   sliding_window  |i-j| <= window.
//   dilated         |i-j| <= window·dilation and (i-j) % dilation == 0 (dilation = step; dilation 1 is the
//                   plain window; KLab's DILATE_FACTOR is dilation - 1).
//   dilated_2d      floor(i/block) == floor(j/block) and (i mod block) ≡ (j mod block) (mod dilation): within
//                   each diagonal block, a row sees the columns of its own phase. KLab's spfa_local_2d_dilated
//                   keeps phase 0 only (rows off the phase see nothing and come out NaN); keeping every phase
//                   gives the same cost per visible row and no empty rows. A last partial block is kept.
//   global          the global_tokens see every j and are seen by every i; with window >= 0, also the
//                   sliding window (without it, other rows do not see themselves).
//   longformer      sliding window ∪ global_tokens, as `global` with a required window.
//   bigbird         block level, b = block, nb = ceil(N/b): query block I sees key block J when
//                   |I-J| <= window_blocks/2 (window_blocks odd, or 0 for none), or I < global_blocks, or
//                   J < global_blocks, or J is one of random_blocks blocks drawn, as in BigBird's own code,
//                   from the blocks that the window and global blocks leave uncovered (causal: from J <= I
//                   only), fewer when fewer are left. The draw is Philox-4x32-10 keyed by seed on stream
//                   (head << 32 | I), Floyd's sampling, so it is a pure function of (spec, N, head).
//   block_local     floor(i/block) == floor(j/block).
//   strided         (Child et al. 2019, stride l) A1: |i-j| < l; A2: (i-j) % l == 0. Causal follows the paper,
//                   A1 = {max(0, i-l) .. i} (l+1 keys, not the j <= i half of the bidirectional A1),
//                   A2 = {j <= i : (i-j) % l == 0}.
//   fixed           A1: floor(j/l) == floor(i/l); A2: j mod l in [l - (v+1)·c, l - v·c), c = summary, where
//                   the head variant v = (index of the head among the heads that use A2) % num_patterns, as
//                   OpenAI's num_verts and DeepSpeed's num_different_global_patterns. That index is h in
//                   merged and interleaved modes and h/2 in multihead mode (only odd heads use A2 there, so
//                   h % num_patterns would give them all the same sub-block).
// Factorised heads (strided, fixed; paper §4.3): merged = A1 ∪ A2 in every head, multihead = head h uses
// A^(h mod 2), interleaved = layer r uses A^(r mod 2) in every head.
//
// Rows can be empty: causal `global` without a window before the first global token, A2-only heads of
// causal `fixed` before the first summary column, A2-only heads of `fixed` when no summary column is < N.
// Kernels must handle empty rows (zero output, as KLab's use_nan = false).
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "nn/attention_graph.h"

namespace dense::nn {

enum class PatternKind {
  Dense,
  SlidingWindow,
  Dilated,
  Dilated2D,
  Global,
  Longformer,
  BigBird,
  BlockLocal,
  Strided,
  Fixed
};
enum class FactorisedHeads { Merged, Multihead, Interleaved };

const char* pattern_kind_name(PatternKind kind);     // "sliding_window", ...: the spelling parse reads
const char* factorised_heads_name(FactorisedHeads);  // "merged", "multihead", "interleaved"

// Fields a kind does not use are ignored (and rejected as keys by the parsers). -1 / 0 mark "not given" for
// fields without a default; validate_pattern_spec says which kind needs which.
struct PatternSpec {
  PatternKind kind = PatternKind::Dense;
  bool causal = false;
  int64_t block = 64;        // layout block size; also the pattern's block for dilated_2d, block_local, bigbird
  int64_t window = -1;       // sliding_window, dilated (in steps), longformer; optional for global (-1: none)
  int64_t dilation = 0;      // dilated, dilated_2d: >= 1
  int64_t stride = 0;        // strided, fixed: l >= 1
  int64_t summary = 0;       // fixed: c, 1 <= c and num_patterns·c <= l
  int64_t num_patterns = 1;  // fixed
  std::vector<int64_t> global_tokens;  // global, longformer: >= 0, any order (duplicates merge); < N at build
  int64_t window_blocks = 3;           // bigbird (DeepSpeed's defaults)
  int64_t global_blocks = 1;
  int64_t random_blocks = 1;
  uint64_t seed = 0;
  FactorisedHeads heads_mode = FactorisedHeads::Merged;  // strided, fixed

  bool operator==(const PatternSpec&) const = default;
};

// Throws dense::Error "<where>: <field> ..." for the first field out of range for spec.kind. Checks that need
// N (global tokens < N) are made by build_pattern.
void validate_pattern_spec(const PatternSpec& spec, const std::string& where);

// From keys = values: "kind" is required; the other keys are the field names above. Values: integers,
// causal = true|false|1|0, heads_mode = merged|multihead|interleaved, global_tokens = items joined by '+',
// each an index or an inclusive range a..b ("0..15+511"). Errors name `where`, the key and what was
// expected; unknown keys and keys of other kinds are errors ("did you mean" when one is close).
PatternSpec parse_pattern_spec(const std::map<std::string, std::string>& kv, const std::string& where);
// From one string: "fixed:stride=128,summary=16,causal=true", "dense", or the describe() form
// "kind=fixed,stride=128,...". Empty items, items without '=' and repeated keys are errors.
PatternSpec parse_pattern(std::string_view text, const std::string& where);
// The canonical key=value map / string of every key spec.kind uses (defaults included), in a fixed order;
// parse_pattern_spec / parse_pattern read them back to an equal spec.
std::map<std::string, std::string> pattern_key_values(const PatternSpec& spec);
std::string describe(const PatternSpec& spec);

struct AttentionPattern {
  PatternSpec spec;  // as built (validated)
  int64_t seq_len = 0, heads = 0, layer_index = 0;
  // Rows = cols = seq_len. Size `heads`, or 1 when every head has the same pattern (shared_across_heads).
  std::vector<CsrGraph> graphs;
  bool shared_across_heads = true;
  int64_t block = 0;   // layout block size b
  int64_t blocks = 0;  // nb = ceil(seq_len / b); the last block row/column may be partial
  // [graphs.size(), nb, nb] row-major, like `graphs`: one layout per distinct graph. Block (bi, bj) is 1 iff
  // some element of it is visible. layout_all_heads() gives the [heads, nb, nb] copy.
  std::vector<uint8_t> layout;
  // Every set block is fully visible (the part of it inside N x N), so the layout alone is the pattern;
  // otherwise the graph of the head is the in-block mask.
  bool exact_blocks = true;

  const CsrGraph& graph(int64_t head) const { return graphs[shared_across_heads ? 0 : static_cast<size_t>(head)]; }
  std::span<const uint8_t> layout_of(int64_t head) const;  // nb * nb
  bool block_set(int64_t head, int64_t bi, int64_t bj) const { return layout_of(head)[bi * blocks + bj] != 0; }
  std::vector<uint8_t> layout_all_heads() const;
};

// `layer_index` picks A^(r mod 2) in interleaved mode and is ignored otherwise. Throws dense::Error naming
// the field for invalid specs, seq_len outside [1, 2^31 - 1], heads < 1, global tokens >= seq_len.
AttentionPattern build_pattern(const PatternSpec& spec, int64_t seq_len, int64_t heads, int64_t layer_index = 0);

// The [nb, nb] block layout of an element graph (rows = cols = N), nb = ceil(N / block). O(nnz + nb²).
std::vector<uint8_t> layout_from_graph(const CsrGraph& graph, int64_t block);
// True when every block set in `layout` is fully visible in `graph` (graph ⊆ layout assumed, as for the
// layout_from_graph of it).
bool layout_is_exact(const CsrGraph& graph, std::span<const uint8_t> layout, int64_t block);
// Elements of the set blocks of an [nb, nb] layout over N tokens, intersected with `in_block_mask` when given
// (its blocks outside the layout are dropped). O(result + nb²), or O(nnz(mask) + nb²) with a mask.
CsrGraph graph_from_layout(std::span<const uint8_t> layout, int64_t seq_len, int64_t block,
                           const CsrGraph* in_block_mask = nullptr);
// What a block-sparse kernel computes for `head`: the layout expanded, masked by the graph unless exact_blocks.
CsrGraph expand_layout(const AttentionPattern& pattern, int64_t head);

// The BigBird random key blocks of query block `block_row` for `head` (sorted), as build_pattern draws them;
// for tests and for kernels that generate the pattern on the fly.
std::vector<int64_t> bigbird_random_blocks(const PatternSpec& spec, int64_t seq_len, int64_t head, int64_t block_row);

struct PatternSummary {
  int64_t heads = 0;                       // heads counted (each shared graph counts once per head)
  int64_t nnz = 0;                         // visible (query, key) pairs over those heads
  double density = 0;                      // nnz / (heads · N²)
  int64_t min_degree = 0, max_degree = 0;  // keys per query row
  double mean_degree = 0;
  int64_t empty_rows = 0;
  int64_t blocks_set = 0, blocks_total = 0;  // over those heads' layouts
};
PatternSummary summarize(const AttentionPattern& pattern);  // all heads
PatternSummary summarize_head(const AttentionPattern& pattern, int64_t head);

}  // namespace dense::nn
