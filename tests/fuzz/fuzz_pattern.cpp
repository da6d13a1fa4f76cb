// The attention-pattern text parser (nn::parse_pattern, what model configs and dense-bench read) and the
// builders behind it, on arbitrary text. Input: two control bytes (sequence length 1..256, heads 1..4 and the
// layer), then the pattern text. A spec that parses must describe itself back to an equal spec and build
// graphs that are valid CSR, causal when asked, and agree with their block layout.
#include "core/error.h"
#include "fuzz_common.h"
#include "nn/attention_patterns.h"

using namespace dense::nn;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  dense::fuzz::Input in(data, size);
  const int64_t seq_len = 1 + in.byte();
  const uint8_t ctl = in.byte();
  const int64_t heads = 1 + (ctl & 3), layer = (ctl >> 2) & 3;
  PatternSpec spec;
  try {
    spec = parse_pattern(in.rest(), "fuzz");
  } catch (const dense::Error&) {
    return 0;
  }
  FUZZ_CHECK(parse_pattern(describe(spec), "again") == spec);
  // Keep the work per input small: sizes that parse can be huge (block = 2^31 - 1 is legal).
  if (spec.block > 4096 || spec.window > 4096 || spec.stride > 4096) return 0;
  AttentionPattern p;
  try {
    p = build_pattern(spec, seq_len, heads, layer);
  } catch (const dense::Error&) {
    return 0;  // global tokens past the end of this length, and the like
  }
  FUZZ_CHECK(p.graphs.size() == (p.shared_across_heads ? 1u : static_cast<size_t>(heads)));
  for (int64_t h = 0; h < (p.shared_across_heads ? 1 : heads); ++h) {
    const CsrGraph& g = p.graph(h);
    g.validate("fuzz pattern");
    FUZZ_CHECK(g.rows == seq_len && g.cols == seq_len);
    if (spec.causal)
      for (int64_t i = 0; i < g.rows; ++i)
        for (int64_t q = g.row_ptr[i]; q < g.row_ptr[i + 1]; ++q) FUZZ_CHECK(g.col[q] <= i);
    FUZZ_CHECK(expand_layout(p, h) == g);
    FUZZ_CHECK(graph_from_layout(p.layout_of(h), seq_len, p.block, &g) == g);
  }
  return 0;
}
