#include "nn/device_graph.h"

#include <algorithm>

#include "core/error.h"

namespace dense::nn {

namespace {
// Concatenates the graphs' CSR arrays with row_ptr made absolute into the joint col array.
void pack(const std::vector<const CsrGraph*>& graphs, Device device, Tensor& row_ptr, Tensor& col) {
  std::vector<int64_t> rp;
  std::vector<int32_t> c;
  int64_t base = 0;
  for (const CsrGraph* g : graphs) {
    for (int64_t v : g->row_ptr) rp.push_back(v + base);
    c.insert(c.end(), g->col.begin(), g->col.end());
    base += g->nnz();
  }
  if (c.empty()) c.push_back(0);  // a zero-size tensor has no storage; the kernels never read it
  row_ptr = Tensor::from_vector<int64_t>(rp, {static_cast<int64_t>(rp.size())}, DType::I64).to(device);
  col = Tensor::from_vector<int32_t>(c, {static_cast<int64_t>(c.size())}, DType::I32).to(device);
}
}  // namespace

DeviceGraph DeviceGraph::upload(const std::vector<CsrGraph>& graphs, Device device) {
  DENSE_CHECK(!graphs.empty(), "attention graph: no graphs given");
  DeviceGraph d;
  d.rows_ = graphs[0].rows;
  d.keys_ = graphs[0].cols;
  d.groups_ = static_cast<int64_t>(graphs.size());
  std::vector<CsrGraph> transposes;
  transposes.reserve(graphs.size());
  std::vector<const CsrGraph*> fwd, bwd;
  for (const CsrGraph& g : graphs) {
    g.validate("attention graph");
    DENSE_CHECK(g.rows == d.rows_ && g.cols == d.keys_,
                "attention graph: head graphs of different shapes {}x{} and {}x{}", g.rows, g.cols, d.rows_, d.keys_);
    d.nnz_ += g.nnz();
    transposes.push_back(g.transposed());
    fwd.push_back(&g);
  }
  for (const CsrGraph& t : transposes) bwd.push_back(&t);
  pack(fwd, device, d.row_ptr_, d.col_);
  pack(bwd, device, d.t_row_ptr_, d.t_col_);
  return d;
}

DeviceGraph DeviceGraph::band(int64_t rows, int64_t keys, int64_t lo, int64_t hi) {
  DENSE_CHECK(rows >= 0 && keys >= 0 && lo <= hi, "band graph: bad rows {} keys {} band [{}, {}]", rows, keys, lo, hi);
  DeviceGraph d;
  d.band_ = true;
  d.rows_ = rows;
  d.keys_ = keys;
  d.lo_ = lo;
  d.hi_ = hi;
  for (int64_t i = 0; i < rows; ++i)
    d.nnz_ += std::max<int64_t>(0, std::min(keys - 1, i + hi) - std::max<int64_t>(0, i + lo) + 1);
  return d;
}

GraphRef DeviceGraph::ref(const Tensor& row_ptr, const Tensor& col, int64_t rows, int64_t keys, int64_t lo,
                          int64_t hi) const {
  GraphRef r;
  if (band_) {
    r.band_lo = lo;
    r.band_hi = hi;
  } else {
    r.row_ptr = &row_ptr;
    r.col = &col;
    r.groups = groups_;
    r.rows = rows;
    r.keys = keys;
  }
  return r;
}

// The transpose swaps queries and keys: the band lo <= j - i <= hi becomes -hi <= i - j <= -lo.
GraphRef DeviceGraph::forward_ref() const { return ref(row_ptr_, col_, rows_, keys_, lo_, hi_); }
GraphRef DeviceGraph::transposed_ref() const { return ref(t_row_ptr_, t_col_, keys_, rows_, -hi_, -lo_); }

const DeviceGraph& PatternGraphCache::get(const PatternSpec& spec, int64_t seq_len, int64_t heads, int64_t layer_index,
                                          Device device) {
  if (graph_.defined() && seq_len == seq_len_ && device == device_) return graph_;
  if (spec.kind == PatternKind::SlidingWindow) {
    validate_pattern_spec(spec, "sparse attention pattern");
    graph_ = DeviceGraph::band(seq_len, seq_len, -spec.window, spec.causal ? 0 : spec.window);
  } else if (spec.kind == PatternKind::Dense) {
    // Full attention as the band that spans the sequence: no N² index memory, so `pattern: dense` is
    // softmax attention in O(N) memory (online softmax per row, no N x N scores).
    validate_pattern_spec(spec, "sparse attention pattern");
    graph_ = DeviceGraph::band(seq_len, seq_len, -seq_len, spec.causal ? 0 : seq_len);
  } else {
    graph_ = DeviceGraph::upload(build_pattern(spec, seq_len, heads, layer_index).graphs, device);
  }
  seq_len_ = seq_len;
  device_ = device;
  return graph_;
}

}  // namespace dense::nn
