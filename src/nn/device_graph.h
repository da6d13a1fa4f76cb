#pragma once
// An attention graph (one CSR per head, or one shared) and its transpose, resident on a device in the layout
// the graph attention kernels read (backend.h GraphRef), or an implicit band that needs no index memory.
#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "core/tensor.h"
#include "nn/attention_graph.h"
#include "nn/attention_patterns.h"

namespace dense::nn {

class DeviceGraph {
 public:
  DeviceGraph() = default;
  // graphs: 1 (shared by every head) or one per head, all of one shape. Validated before upload.
  static DeviceGraph upload(const std::vector<CsrGraph>& graphs, Device device);
  // Keys lo <= j - i <= hi of a [rows, keys] graph (e.g. -w, w: the sliding window).
  static DeviceGraph band(int64_t rows, int64_t keys, int64_t lo, int64_t hi);

  GraphRef forward_ref() const;
  GraphRef transposed_ref() const;
  int64_t rows() const { return rows_; }
  int64_t keys() const { return keys_; }
  int64_t groups() const { return groups_; }
  int64_t nnz() const { return nnz_; }  // per group summed (band: counted exactly)
  bool defined() const { return rows_ > 0 || keys_ > 0; }

 private:
  GraphRef ref(const Tensor& row_ptr, const Tensor& col, int64_t rows, int64_t keys, int64_t lo, int64_t hi) const;

  Tensor row_ptr_, col_, t_row_ptr_, t_col_;
  int64_t rows_ = 0, keys_ = 0, groups_ = 1, nnz_ = 0;
  bool band_ = false;
  int64_t lo_ = 0, hi_ = 0;
};

// A pattern's graphs for one sequence length, on `device`, built on first use and rebuilt when the length or
// device changes (the models see one length per batch). Sliding windows become the implicit band: no index
// memory, which is what makes the longest sequences fit.
class PatternGraphCache {
 public:
  const DeviceGraph& get(const PatternSpec& spec, int64_t seq_len, int64_t heads, int64_t layer_index, Device device);
  void clear() { graph_ = DeviceGraph(); }

 private:
  DeviceGraph graph_;
  int64_t seq_len_ = -1;
  Device device_ = Device::cpu();
};

}  // namespace dense::nn
