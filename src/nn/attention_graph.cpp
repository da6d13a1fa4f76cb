#include "nn/attention_graph.h"

#include <algorithm>
#include <iterator>

#include "core/error.h"

namespace dense::nn {

bool CsrGraph::contains(int64_t i, int64_t j) const {
  const auto begin = col.begin() + row_ptr[i], end = col.begin() + row_ptr[i + 1];
  return std::binary_search(begin, end, static_cast<int32_t>(j));
}

CsrGraph CsrGraph::transposed() const {
  CsrGraph t;
  t.rows = cols;
  t.cols = rows;
  t.row_ptr.assign(static_cast<size_t>(cols) + 1, 0);
  for (int32_t j : col) ++t.row_ptr[static_cast<size_t>(j) + 1];
  for (int64_t j = 0; j < cols; ++j) t.row_ptr[j + 1] += t.row_ptr[j];
  t.col.resize(col.size());
  std::vector<int64_t> fill(t.row_ptr.begin(), t.row_ptr.end() - 1);
  // Rows are visited in increasing order, so every transposed row comes out sorted.
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t p = row_ptr[i]; p < row_ptr[i + 1]; ++p) t.col[fill[col[p]]++] = static_cast<int32_t>(i);
  return t;
}

void CsrGraph::validate(const char* what) const {
  DENSE_CHECK(rows >= 0 && cols >= 0 && cols <= INT32_MAX, "{}: bad graph shape {} x {}", what, rows, cols);
  DENSE_CHECK(row_ptr.size() == static_cast<size_t>(rows) + 1, "{}: row_ptr has {} entries, expected rows + 1 = {}",
              what, row_ptr.size(), rows + 1);
  DENSE_CHECK(row_ptr[0] == 0, "{}: row_ptr[0] is {}, expected 0", what, row_ptr[0]);
  DENSE_CHECK(row_ptr.back() == static_cast<int64_t>(col.size()), "{}: row_ptr ends at {} but there are {} columns",
              what, row_ptr.back(), col.size());
  for (int64_t i = 0; i < rows; ++i) {
    DENSE_CHECK(row_ptr[i] <= row_ptr[i + 1], "{}: row_ptr decreases at row {}", what, i);
    for (int64_t p = row_ptr[i]; p < row_ptr[i + 1]; ++p) {
      DENSE_CHECK(col[p] >= 0 && col[p] < cols, "{}: row {} has column {} outside [0, {})", what, i, col[p], cols);
      DENSE_CHECK(p == row_ptr[i] || col[p - 1] < col[p], "{}: row {} columns are not strictly increasing at {}", what,
                  i, col[p]);
    }
  }
}

namespace {
template <class Merge>
CsrGraph merge_rows(const CsrGraph& a, const CsrGraph& b, const char* what, Merge&& merge) {
  DENSE_CHECK(a.rows == b.rows && a.cols == b.cols, "{}: graphs of different shapes {}x{} and {}x{}", what, a.rows,
              a.cols, b.rows, b.cols);
  CsrGraph g;
  g.rows = a.rows;
  g.cols = a.cols;
  g.row_ptr.reserve(static_cast<size_t>(a.rows) + 1);
  g.row_ptr.push_back(0);
  for (int64_t i = 0; i < a.rows; ++i) {
    merge(a.col.begin() + a.row_ptr[i], a.col.begin() + a.row_ptr[i + 1], b.col.begin() + b.row_ptr[i],
          b.col.begin() + b.row_ptr[i + 1], std::back_inserter(g.col));
    g.row_ptr.push_back(static_cast<int64_t>(g.col.size()));
  }
  return g;
}
}  // namespace

CsrGraph CsrGraph::unite(const CsrGraph& a, const CsrGraph& b) {
  return merge_rows(a, b, "graph union", [](auto... args) { std::set_union(args...); });
}

CsrGraph CsrGraph::intersect(const CsrGraph& a, const CsrGraph& b) {
  return merge_rows(a, b, "graph intersection", [](auto... args) { std::set_intersection(args...); });
}

}  // namespace dense::nn
