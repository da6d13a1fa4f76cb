#include "nn/relpe.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <mutex>
#include <vector>

#include "backend/ops.h"

namespace dense::nn {

namespace {

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

// Per-head frequency of channel i (0 <= i < e), exactly as the reference evaluates it in double.
double frequency(RelPEType type, int64_t i, int64_t e) {
  if (type == RelPEType::Rope) return std::pow(10000.0, -2.0 * double(i % (e / 2)) / double(e));
  return std::pow(10000.0, -double(i) / double(e));
}

}  // namespace

RelPEType parse_relpe_type(const std::string& name, const std::string& field) {
  if (name.empty() || name == "none" || name == "dummy" || name == "null") return RelPEType::None;
  if (name == "cosine") return RelPEType::Cosine;
  if (name == "cos_minus_sin") return RelPEType::CosMinusSin;
  if (name == "rope") return RelPEType::Rope;
  if (name == "learned")
    DENSE_FAIL(
        "{}: 'learned' (the multiplicative learned RelPE) is not supported: it is broken in the reference "
        "implementation (docs/model.md §1.6); allowed: none, cosine, cos_minus_sin, rope",
        field);
  DENSE_FAIL("{}: unknown RelPE type '{}'; allowed: none, cosine, cos_minus_sin, rope", field, name);
}

const char* relpe_type_name(RelPEType type) {
  switch (type) {
    case RelPEType::None: return "none";
    case RelPEType::Cosine: return "cosine";
    case RelPEType::CosMinusSin: return "cos_minus_sin";
    case RelPEType::Rope: return "rope";
  }
  return "?";
}

RelPEScheme RelPEScheme::parse(const std::string& s, const std::string& field) {
  RelPEScheme scheme;
  if (trim(s).empty()) return scheme;
  size_t start = 0;
  while (true) {
    const size_t comma = s.find(',', start);
    const std::string code = trim(s.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (code == "qkv")
      scheme.x = true;
    else if (code == "q")
      scheme.q = true;
    else if (code == "k")
      scheme.k = true;
    else if (code == "v")
      scheme.v = true;
    else
      DENSE_FAIL("{}: bad RelPE scheme '{}' (code '{}'); allowed: 'qkv' or a comma list of q, k, v", field, s, code);
    if (comma == std::string::npos) return scheme;
    start = comma + 1;
  }
}

struct RelPE::PositionCache {
  std::mutex mutex;
  std::map<std::array<int64_t, 4>, Tensor> tensors;
};

RelPE::RelPE(RelPEType type, int64_t max_positions, int64_t head_size, int64_t heads, DType dtype, Device device)
    : type_(type),
      max_positions_(max_positions),
      head_size_(head_size),
      heads_(heads),
      device_(device),
      cache_(std::make_shared<PositionCache>()) {
  DENSE_CHECK(max_positions > 0 && head_size > 0 && heads > 0,
              "RelPE: max_position_embeddings {}, head size {} and heads {} must be positive", max_positions, head_size,
              heads);
  DENSE_CHECK(type != RelPEType::Rope || head_size % 2 == 0, "rope needs an even head size, got {}", head_size);
  if (type == RelPEType::None) return;
  const int64_t d = width();
  std::vector<double> first(size_t(max_positions * d)), second;
  if (type == RelPEType::Rope) second.resize(first.size());
  for (int64_t p = 0; p < max_positions; ++p)
    for (int64_t c = 0; c < d; ++c) {
      const double angle = double(p) * frequency(type, c % head_size, head_size);
      const size_t at = size_t(p * d + c);
      switch (type) {
        case RelPEType::Cosine: first[at] = std::cos(angle); break;
        case RelPEType::CosMinusSin: first[at] = std::cos(angle) - std::sin(angle); break;
        case RelPEType::Rope:
          first[at] = std::cos(angle);
          second[at] = std::sin(angle);
          break;
        case RelPEType::None: break;
      }
    }
  table_ = Tensor::from_vector(first, {max_positions, d}, dtype, device);
  if (type == RelPEType::Rope) sin_ = Tensor::from_vector(second, {max_positions, d}, dtype, device);
}

Tensor RelPE::apply(const Tensor& x, const Tensor& positions) const {
  switch (type_) {
    case RelPEType::None: return x;
    case RelPEType::Cosine:
    case RelPEType::CosMinusSin: return ops::positional_scale(x, table_, positions);
    case RelPEType::Rope: return ops::rope(x, table_, sin_, positions, /*inverse=*/false);
  }
  return x;
}

Tensor RelPE::apply_backward(const Tensor& dy, const Tensor& positions) const {
  switch (type_) {
    case RelPEType::None: return dy;
    case RelPEType::Cosine:
    case RelPEType::CosMinusSin: return ops::positional_scale(dy, table_, positions);  // diagonal: self-adjoint
    case RelPEType::Rope: return ops::rope(dy, table_, sin_, positions, /*inverse=*/true);
  }
  return dy;
}

Tensor RelPE::positions(int64_t length, int64_t window, int64_t begin, int64_t end) const {
  DENSE_CHECK(length > 0 && 0 <= begin && begin <= end && end <= length && window >= 0,
              "RelPE positions: bad layout (length {}, window {}, rows [{}, {}))", length, window, begin, end);
  DENSE_CHECK(cache_ != nullptr, "RelPE positions requested from a default-constructed RelPE");
  const std::array<int64_t, 4> key{length, window, begin, end};
  std::lock_guard<std::mutex> lock(cache_->mutex);
  if (auto it = cache_->tensors.find(key); it != cache_->tensors.end()) return it->second;
  std::vector<int64_t> pos(size_t(length), 0);
  for (int64_t r = begin; r < end; ++r) pos[size_t(r)] = window > 0 ? r % window : r;
  const int64_t last = *std::max_element(pos.begin(), pos.end());
  DENSE_CHECK(last < max_positions_,
              "RelPE position {} is outside the table: the sequence needs max_position_embeddings > {} (it is {})",
              last, last, max_positions_);
  // Dynamic shapes (evaluation batches padded to their own length) would grow the cache without bound.
  if (cache_->tensors.size() >= 64) cache_->tensors.clear();
  Tensor t = Tensor::from_vector(pos, {length}, DType::I64, device_);
  cache_->tensors.emplace(key, t);
  return t;
}

}  // namespace dense::nn
