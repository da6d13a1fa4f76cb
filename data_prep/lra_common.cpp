#include "data_prep/lra_common.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace dense::data::lra {

void ImageSet::append(std::span<const uint8_t> image, int32_t label) {
  DENSE_CHECK(int64_t(image.size()) == seq_len(), "image of {} pixels appended to a {}x{} image set", image.size(),
              height, width);
  pixels.insert(pixels.end(), image.begin(), image.end());
  labels.push_back(label);
}

ImageSet ImageSet::slice(int64_t begin, int64_t end) const {
  DENSE_CHECK(0 <= begin && begin <= end && end <= size(), "slice [{}, {}) of an image set of {}", begin, end, size());
  ImageSet r;
  r.height = height;
  r.width = width;
  r.pixels.assign(pixels.begin() + begin * seq_len(), pixels.begin() + end * seq_len());
  r.labels.assign(labels.begin() + begin, labels.begin() + end);
  return r;
}

int64_t encode_bytes(std::string_view text, const ByteTokenOptions& o, std::vector<int32_t>& ids,
                     std::vector<uint8_t>& mask) {
  DENSE_CHECK(o.seq_len > (o.add_cls ? 1 : 0), "sequence length {} too short", o.seq_len);
  int64_t n = 0;
  if (o.add_cls) {
    ids.push_back(o.cls_id);
    mask.push_back(1);
    ++n;
  }
  const int64_t take = std::min<int64_t>(int64_t(text.size()), o.seq_len - n);
  for (int64_t i = 0; i < take; ++i) {
    ids.push_back(o.byte_offset + int32_t(static_cast<unsigned char>(text[size_t(i)])));
    mask.push_back(1);
  }
  n += take;
  for (int64_t i = n; i < o.seq_len; ++i) {
    ids.push_back(o.pad_id);
    mask.push_back(0);
  }
  return n;
}

TokenSet encode_bytes(std::span<const TextExample> examples, const ByteTokenOptions& options) {
  TokenSet t;
  t.seq_len = options.seq_len;
  t.ids.reserve(examples.size() * size_t(options.seq_len));
  t.mask.reserve(examples.size() * size_t(options.seq_len));
  for (const auto& e : examples) {
    encode_bytes(e.text, options, t.ids, t.mask);
    t.labels.push_back(e.label);
  }
  return t;
}

std::vector<int64_t> split_sizes(int64_t n, std::span<const double> fractions) {
  DENSE_CHECK(!fractions.empty(), "no split fractions given");
  double total = 0;
  for (double f : fractions) {
    DENSE_CHECK(f >= 0, "negative split fraction {}", f);
    total += f;
  }
  DENSE_CHECK(std::abs(total - 1.0) < 1e-9, "split fractions sum to {}, not 1", total);
  std::vector<int64_t> sizes;
  int64_t used = 0;
  for (size_t i = 0; i + 1 < fractions.size(); ++i) {
    // A tiny epsilon keeps 0.8 * 1000 at 800 despite rounding in the product.
    const auto k = std::min<int64_t>(n - used, int64_t(std::floor(double(n) * fractions[i] + 1e-9)));
    sizes.push_back(k);
    used += k;
  }
  sizes.push_back(n - used);
  return sizes;
}

}  // namespace dense::data::lra
