#pragma once
// The `bert` shard format: NSP sentence pairs with static masks in exactly the NVIDIA/LDDL HDF5 layout
// (docs/model.md §3.1), plus the pure functions that build them from token-id documents.
//
//   dataset               dtype  shape
//   input_ids             int32  [n, N]   [CLS] A [SEP] B [SEP], 0-padded
//   input_mask            int8   [n, N]   1 = real token
//   segment_ids           int8   [n, N]   0 for [CLS] A [SEP], 1 for B [SEP]
//   masked_lm_positions   int32  [n, P]   ascending, 0-padded (position 0 is [CLS], never masked)
//   masked_lm_ids         int32  [n, P]   the original ids at those positions, 0-padded
//   next_sentence_labels  int8   [n]      1 = B is a random span ("random next")
//   filled_lengths        int32  [n]      number of real tokens
// plus the common attributes (shard.h) and `max_predictions_per_seq` (int64, = P).
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "data/shard.h"

namespace dense::data {

using Sentence = std::vector<int32_t>;        // token ids of one sentence (or line)
using TokenDocument = std::vector<Sentence>;  // a document as its sentences

// One row before padding: what create_bert_instances produces and BertShardWriter stores.
struct BertInstance {
  std::vector<int32_t> input_ids;            // masked, length <= N
  std::vector<int8_t> segment_ids;           // same length
  std::vector<int32_t> masked_lm_positions;  // strictly ascending, in [1, length)
  std::vector<int32_t> masked_lm_ids;        // original ids at those positions
  int8_t next_sentence_label = 0;            // 1 = random next
};

// ---- NSP pairs (BERT's create_instances_from_document, as LDDL runs it) ---------------------------------

struct NspConfig {
  int64_t max_seq_length = 128;   // N
  double short_seq_prob = 0.1;    // target length becomes uniform[2, N-3] with this probability (0 for test)
  double random_next_prob = 0.5;  // B is a random span with this probability (always with one segment)
  int32_t cls_id = 101;
  int32_t sep_id = 102;
};

struct NspPair {
  std::vector<int32_t> tokens;      // [CLS] A [SEP] B [SEP], unmasked, length <= N
  std::vector<int8_t> segment_ids;  // 0 ... 0 1 ... 1
  bool is_random_next = false;
  int32_t a_length = 0, b_length = 0;
};

// Pairs from documents[document_index]: accumulate sentences up to the target length (N-3, or with
// probability short_seq_prob uniform[2, N-3], drawn once per document); A = a random prefix of the chunk;
// B = the rest (label 0) or, with random_next_prob or when the chunk has one sentence, a span from another
// random document (label 1; the unused sentences are put back); the pair is truncated from the longer side,
// front or back at random, to N-3 tokens. Empty sentences are ignored; a document yields nothing if it has no
// tokens.
std::vector<NspPair> create_nsp_pairs(std::span<const TokenDocument> documents, size_t document_index,
                                      const NspConfig& config, PhiloxRng& rng);

// ---- static masking ------------------------------------------------------------------------------------

struct StaticMaskingConfig {
  double masked_lm_ratio = 0.15;        // 0.12 for the test sets
  int64_t max_predictions_per_seq = 0;  // P; 0 = round(ratio * N) via max_predictions_for
  double p_mask = 0.8;                  // chosen position -> [MASK]
  double p_random = -1;                 // chosen position -> uniform random id in [0, vocab); <0: (1-p_mask)/2
  int32_t vocab_size = 30522;
  int32_t mask_id = 103;
  std::vector<int32_t> never_mask = {101, 102};  // [CLS], [SEP]
};

// P = round(ratio * N) with Python's rounding: 19 for (128, 0.15), 77 for (512, 0.15), 15 for (128, 0.12).
int64_t max_predictions_for(int64_t seq_len, double ratio);

// Exactly min(P, max(1, round(len * ratio)), #candidates) positions chosen uniformly among the tokens not in
// never_mask; each becomes [MASK] (p_mask), a uniform random id (p_random) or stays (the rest). Positions are
// returned ascending with the original ids.
BertInstance mask_static(const NspPair& pair, const StaticMaskingConfig& config, int64_t seq_len, PhiloxRng& rng);

// create_nsp_pairs + mask_static for one document, on the random stream (seed, document_index): a pure
// function of its arguments, so documents can be processed in any order or in parallel.
std::vector<BertInstance> create_bert_instances(std::span<const TokenDocument> documents, size_t document_index,
                                                const NspConfig& nsp, const StaticMaskingConfig& masking,
                                                uint64_t seed);

// ---- writer / reader -----------------------------------------------------------------------------------

class BertShardWriter {
 public:
  // P = max_predictions_per_seq. The file appears under `path` only when close() succeeds.
  BertShardWriter(const std::string& path, int64_t seq_len, int64_t max_predictions_per_seq, const ShardMeta& meta,
                  const ShardWriteOptions& options = {});
  ~BertShardWriter();  // without close(): the temporary file is removed
  BertShardWriter(const BertShardWriter&) = delete;
  BertShardWriter& operator=(const BertShardWriter&) = delete;
  // Validates (lengths, positions ascending in [1, len), label 0/1) and appends one row.
  void append(const BertInstance& instance);
  int64_t rows() const;
  void close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct BertRows {
  int64_t rows = 0, seq_len = 0, max_predictions = 0;
  std::vector<int32_t> input_ids;            // [rows, N]
  std::vector<int8_t> input_mask;            // [rows, N]
  std::vector<int8_t> segment_ids;           // [rows, N]
  std::vector<int32_t> masked_lm_positions;  // [rows, P]
  std::vector<int32_t> masked_lm_ids;        // [rows, P]
  std::vector<int8_t> next_sentence_labels;  // [rows]
  std::vector<int32_t> filled_lengths;       // [rows]
  // Built as the reference loader does: -1 everywhere, masked_lm_ids[k] at masked_lm_positions[k] for k
  // before the first 0 position.
  std::vector<int32_t> masked_lm_labels;  // [rows, N]
};

class BertShardReader {
 public:
  // Validates attributes (format 'bert', version, vocab hash, seq_len) and the layout: all datasets present
  // with the dtypes above and consistent shapes. A foreign (LDDL) file without filled_lengths gets them from
  // input_mask.
  explicit BertShardReader(const std::string& path, const ShardExpect& expect = {});
  ~BertShardReader();
  BertShardReader(BertShardReader&&) noexcept;
  BertShardReader& operator=(BertShardReader&&) noexcept;
  const ShardInfo& info() const;  // info().rows and info().seq_len are read from the datasets
  int64_t rows() const { return info().rows; }
  int64_t seq_len() const { return info().seq_len; }
  int64_t max_predictions() const;
  // Rows [begin, end); masked_lm_positions are checked to lie in [0, N).
  BertRows read(int64_t begin, int64_t end) const;
  BertRows read_all() const { return read(0, rows()); }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dense::data
