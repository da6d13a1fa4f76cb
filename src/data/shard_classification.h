#pragma once
// The `classification` shard format (GLUE, LRA): padded ids with an attention mask, an optional second
// document (LRA retrieval) and integer or float labels.
//
//   dataset          dtype          shape
//   input_ids        int32          [n, N]
//   attention_mask   int8           [n, N]   1 = real token
//   token_type_ids   int8           [n, N]   optional (sentence pairs for BERT baselines)
//   input_ids2       int32          [n, N]   optional, with attention_mask2 (retrieval)
//   attention_mask2  int8           [n, N]
//   labels           int64|float32  [n]
// plus the common attributes (shard.h), `num_labels` (int64; 1 for regression) and `labeled` (int64 0/1).
#include <memory>
#include <string>
#include <vector>

#include "data/shard.h"

namespace dense::data {

enum class LabelType { Int64, Float32 };

struct ClassificationLayout {
  int64_t seq_len = 0;
  bool second_document = false;  // input_ids2 / attention_mask2
  bool token_type_ids = false;
  LabelType label_type = LabelType::Int64;
  int64_t num_labels = 2;  // classes (1 for regression); integer labels must lie in [0, num_labels)
  int32_t pad_id = 0;      // pads ids shorter than N
  // false for unlabeled splits (GLUE test files): every label is -1 (Int64) or NaN (Float32); stored as the
  // attribute `labeled` (absent means labeled).
  bool labeled = true;
};

struct ClassificationExample {
  std::vector<int32_t> input_ids;      // at most N; padded with pad_id
  std::vector<int8_t> attention_mask;  // empty: 1 for every given id
  std::vector<int8_t> token_type_ids;  // when the layout has them: empty means all 0
  std::vector<int32_t> input_ids2;     // when the layout has a second document
  std::vector<int8_t> attention_mask2;
  double label = 0;  // an integer value for Int64 labels
};

class ClassificationShardWriter {
 public:
  ClassificationShardWriter(const std::string& path, const ClassificationLayout& layout, const ShardMeta& meta,
                            const ShardWriteOptions& options = {});
  ~ClassificationShardWriter();  // without close(): the temporary file is removed
  ClassificationShardWriter(const ClassificationShardWriter&) = delete;
  ClassificationShardWriter& operator=(const ClassificationShardWriter&) = delete;
  void append(const ClassificationExample& example);
  int64_t rows() const;
  void close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct ClassificationRows {
  int64_t rows = 0, seq_len = 0;
  std::vector<int32_t> input_ids;       // [rows, N]
  std::vector<int8_t> attention_mask;   // [rows, N]
  std::vector<int8_t> token_type_ids;   // [rows, N] when present, else empty
  std::vector<int32_t> input_ids2;      // [rows, N] when present, else empty
  std::vector<int8_t> attention_mask2;  // [rows, N] when present, else empty
  std::vector<int64_t> labels;          // [rows] for Int64 labels, else empty
  std::vector<float> float_labels;      // [rows] for Float32 labels, else empty
};

class ClassificationShardReader {
 public:
  explicit ClassificationShardReader(const std::string& path, const ShardExpect& expect = {});
  ~ClassificationShardReader();
  ClassificationShardReader(ClassificationShardReader&&) noexcept;
  ClassificationShardReader& operator=(ClassificationShardReader&&) noexcept;
  const ShardInfo& info() const;
  const ClassificationLayout& layout() const;  // as found in the file
  int64_t rows() const;
  ClassificationRows read(int64_t begin, int64_t end) const;
  ClassificationRows read_all() const { return read(0, rows()); }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dense::data
