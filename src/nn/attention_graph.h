#pragma once
// An attention mask as a graph (Tomczak & Kuppannagari 2025): tokens are nodes, and query i attends to the
// keys in its adjacency row. Stored in CSR on the host; modules copy it to the device of their tensors.
// Every kernel that takes a mask (graph-processing sparse attention, masked DenseAttention, CQS workers)
// takes it in this form, so a pattern is written once and runs on every path.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace dense::nn {

struct CsrGraph {
  int64_t rows = 0;              // queries
  int64_t cols = 0;              // keys
  std::vector<int64_t> row_ptr;  // [rows + 1], row_ptr[0] = 0
  std::vector<int32_t> col;      // [nnz], strictly increasing within a row, each in [0, cols)

  int64_t nnz() const { return row_ptr.empty() ? 0 : row_ptr.back(); }
  int64_t degree(int64_t i) const { return row_ptr[i + 1] - row_ptr[i]; }
  bool contains(int64_t i, int64_t j) const;
  // The transposed graph (keys -> the queries that see them), used by the backward pass to accumulate dK
  // and dV per key without atomics. Rows stay sorted.
  CsrGraph transposed() const;
  // Throws dense::Error naming `what` and the first broken invariant (sizes, order, range).
  void validate(const char* what) const;
  bool operator==(const CsrGraph&) const = default;

  // From a dense 0/1 predicate; O(rows·cols), for tests and small patterns.
  template <class Pred>
  static CsrGraph from_predicate(int64_t rows, int64_t cols, Pred&& visible) {
    CsrGraph g;
    g.rows = rows;
    g.cols = cols;
    g.row_ptr.reserve(static_cast<size_t>(rows) + 1);
    g.row_ptr.push_back(0);
    for (int64_t i = 0; i < rows; ++i) {
      for (int64_t j = 0; j < cols; ++j)
        if (visible(i, j)) g.col.push_back(static_cast<int32_t>(j));
      g.row_ptr.push_back(static_cast<int64_t>(g.col.size()));
    }
    return g;
  }
  // Union / intersection of two graphs of the same shape (row-wise sorted merges).
  static CsrGraph unite(const CsrGraph& a, const CsrGraph& b);
  static CsrGraph intersect(const CsrGraph& a, const CsrGraph& b);
};

}  // namespace dense::nn
