#pragma once
// Relative positional encodings applied inside DenseAttention (docs/model.md §1.6). One RelPE is built per model and
// shared by every attention layer. Tables cover the whole hidden dim d = e·H (the per-head pattern of length e
// repeated H times), so they apply to [..., d] tensors before the head split.
#include <cstdint>
#include <memory>
#include <string>

#include "core/tensor.h"

namespace dense::nn {

enum class RelPEType { None, Cosine, CosMinusSin, Rope };

// none / dummy / "" -> None, cosine, cos_minus_sin, rope. `field` names the config key in errors.
RelPEType parse_relpe_type(const std::string& name, const std::string& field);
const char* relpe_type_name(RelPEType type);

// Where the RelPE is applied: x = the attention input before the Q projection ("qkv"), or Q / K / V
// separately. Parsed from "qkv" or a comma list of q, k, v (an empty string applies it nowhere).
struct RelPEScheme {
  bool x = false, q = false, k = false, v = false;
  static RelPEScheme parse(const std::string& s, const std::string& field);
  bool any() const { return x || q || k || v; }
};

class RelPE {
 public:
  RelPE() = default;
  // Tables for positions 0..max_positions-1, computed in double and stored in `dtype` on `device`.
  RelPE(RelPEType type, int64_t max_positions, int64_t head_size, int64_t heads, DType dtype, Device device);

  RelPEType type() const { return type_; }
  bool enabled() const { return type_ != RelPEType::None; }
  int64_t max_positions() const { return max_positions_; }
  int64_t head_size() const { return head_size_; }
  int64_t heads() const { return heads_; }
  int64_t width() const { return head_size_ * heads_; }
  // [max_positions, d]: the diagonal factor (cosine, cos_minus_sin) or cos of the RoPE angles; RoPE's sin.
  const Tensor& table() const { return table_; }
  const Tensor& sin_table() const { return sin_; }

  // x: [..., d] contiguous; row r of x sits at positions[r % P] (P = positions.numel(), i64).
  Tensor apply(const Tensor& x, const Tensor& positions) const;
  // The transpose of apply: dx = dy ⊙ C (diagonal types), dx = dy ⊙ cos − rot(dy ⊙ sin) (RoPE).
  Tensor apply_backward(const Tensor& dy, const Tensor& positions) const;

  // Positions 0..n-1.
  Tensor positions(int64_t n) const { return positions(n, 0, 0, n); }
  // Positions of a zero-padded sequence of `length` rows whose real rows are [begin, end): row r gets r % window
  // (window > 0: restarting in every window) or r. Pad rows are all-zero, so any position leaves them zero;
  // they get 0 so that padding never reaches past the table. Cached per arguments (device tensors are reused
  // every step). Throws naming max_position_embeddings when a real row falls outside the table.
  Tensor positions(int64_t length, int64_t window, int64_t begin, int64_t end) const;

 private:
  struct PositionCache;
  RelPEType type_ = RelPEType::None;
  int64_t max_positions_ = 0, head_size_ = 0, heads_ = 0;
  Device device_;
  Tensor table_, sin_;
  std::shared_ptr<PositionCache> cache_;
};

}  // namespace dense::nn
