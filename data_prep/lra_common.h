#pragma once
// Long Range Arena: pieces shared by the task readers and generators (docs/model.md §3.5).
//   * PhiloxStream (= dense::PhiloxStream, core/rng.h): sequential random draws from one Philox-4x32-10 stream
//     (key = seed, counter = offset + i), so every generator is a pure function of (seed, example index) and
//     reproducible on any thread count.
//   * ImageSet: grey images whose uint8 pixels are the tokens (row-major; vocab 256).
//   * TokenSet / PairTokenSet: fixed-length rows of token ids with a 0/1 mask, for the text tasks.
//   * Byte-level encoding of text (IMDB, AAN) and the LRA split rules.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/rng.h"

namespace dense::data::lra {

// The LRA generators' stream: dense::PhiloxStream (core/rng.h) in its (seed, offset) counter layout, drawing
// integers with below()/randint().
using PhiloxStream = dense::PhiloxStream;

// Grey images, row-major; image i is pixels[i*h*w, (i+1)*h*w). Pixel values are the tokens.
struct ImageSet {
  int64_t height = 0, width = 0;
  std::vector<uint8_t> pixels;
  std::vector<int32_t> labels;
  int64_t size() const { return int64_t(labels.size()); }
  int64_t seq_len() const { return height * width; }
  std::span<const uint8_t> image(int64_t i) const { return {pixels.data() + size_t(i * seq_len()), size_t(seq_len())}; }
  void append(std::span<const uint8_t> image, int32_t label);
  // Rows [begin, end) as a new set.
  ImageSet slice(int64_t begin, int64_t end) const;
};

struct ImageSplits {
  ImageSet train, val, test;
};

// Fixed-length token rows: row i is ids[i*seq_len, (i+1)*seq_len), mask 1 = real token (empty if all ones).
struct TokenSet {
  int64_t seq_len = 0;
  std::vector<int32_t> ids;
  std::vector<uint8_t> mask;
  std::vector<int32_t> labels;
  int64_t size() const { return int64_t(labels.size()); }
  std::span<const int32_t> row(int64_t i) const { return {ids.data() + size_t(i * seq_len), size_t(seq_len)}; }
};

// Two documents per example (AAN retrieval): first/second share the labels.
struct PairTokenSet {
  TokenSet first, second;
  int64_t size() const { return first.size(); }
};

// Labelled text (IMDB reviews; the raw input of a character tokenizer).
struct TextExample {
  std::string text;
  int32_t label = 0;
  std::string source;  // file (and line) it came from
};

// Byte-level tokens: byte b -> byte_offset + b, optional CLS first, truncated/padded to seq_len with pad_id.
struct ByteTokenOptions {
  int64_t seq_len = 4000;  // docs/model.md §3.5: Text and Retrieval use 4000 (Retrieval per document, CLS included)
  bool add_cls = false;
  int32_t pad_id = 0;
  int32_t cls_id = 1;
  int32_t byte_offset = 0;
};
// Appends one encoded row to ids/mask; returns the number of real tokens (CLS included).
int64_t encode_bytes(std::string_view text, const ByteTokenOptions& options, std::vector<int32_t>& ids,
                     std::vector<uint8_t>& mask);
TokenSet encode_bytes(std::span<const TextExample> examples, const ByteTokenOptions& options);

// Split sizes for fractions (e.g. {0.8, 0.1, 0.1}): floor for all but the last, which takes the rest.
std::vector<int64_t> split_sizes(int64_t n, std::span<const double> fractions);

}  // namespace dense::data::lra
