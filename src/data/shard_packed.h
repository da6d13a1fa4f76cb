#pragma once
// The `packed` shard format (docs/model.md §3.2): rows of [CLS] + N-1 tokens cut from one continuous stream of
// documents, each followed by [SEP]; no padding, documents cross row boundaries. Masks are drawn at load
// time from (epoch seed, row index), so every epoch sees fresh masks and any row can be masked alone.
//
//   dataset     dtype  shape
//   input_ids   int32  [n, N]
// plus the common attributes (shard.h).
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "data/shard.h"

namespace dense::data {

// Cuts the concatenated document stream into rows. The tail shorter than N-1 tokens is left pending (the
// reference drops it).
class PackedRowBuilder {
 public:
  // append_sep: add [SEP] after every document (false when the tokenizer already produced it from the text).
  explicit PackedRowBuilder(int64_t seq_len, int32_t cls_id = 101, int32_t sep_id = 102, bool append_sep = true);
  void add_document(std::span<const int32_t> ids);
  // Moves the next full row ([CLS] + N-1 stream tokens) into `row`; false when fewer than N-1 are pending.
  bool next_row(std::vector<int32_t>& row);
  int64_t pending_tokens() const { return int64_t(stream_.size() - head_); }

 private:
  int64_t seq_len_;
  int32_t cls_id_, sep_id_;
  bool append_sep_;
  std::vector<int32_t> stream_;
  size_t head_ = 0;
};

class PackedShardWriter {
 public:
  PackedShardWriter(const std::string& path, int64_t seq_len, const ShardMeta& meta,
                    const ShardWriteOptions& options = {});
  ~PackedShardWriter();  // without close(): the temporary file is removed
  PackedShardWriter(const PackedShardWriter&) = delete;
  PackedShardWriter& operator=(const PackedShardWriter&) = delete;
  void append(std::span<const int32_t> row);  // exactly N ids
  int64_t rows() const;
  void close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class PackedShardReader {
 public:
  explicit PackedShardReader(const std::string& path, const ShardExpect& expect = {});
  ~PackedShardReader();
  PackedShardReader(PackedShardReader&&) noexcept;
  PackedShardReader& operator=(PackedShardReader&&) noexcept;
  const ShardInfo& info() const;  // info().rows and info().seq_len are read from the datasets
  int64_t rows() const { return info().rows; }
  int64_t seq_len() const { return info().seq_len; }
  std::vector<int32_t> read(int64_t begin, int64_t end) const;  // [end-begin, N], row-major
  std::vector<int32_t> read_all() const { return read(0, rows()); }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Load-time masking (docs/model.md §3.2): for every position u ~ U[0,1); u < rho*p_mask -> [MASK];
// u < rho*(p_mask + p_random) -> a uniform random id in [0, vocab_size); u < rho -> kept; label = original id
// where u < rho, else -1. Defaults are the reference's: 0.12 / 0.135 / 0.15, [CLS] and [SEP] included.
struct PackedMaskConfig {
  double rho = 0.15;
  double p_mask = 0.8;
  double p_random = -1;  // <0: (1 - p_mask) / 2, i.e. random threshold rho*(0.5 + p_mask/2)
  int32_t vocab_size = 30522;
  int32_t mask_id = 103;
  bool mask_special_tokens = true;  // the reference masks [CLS]/[SEP] too; false leaves never_mask ids alone
  std::vector<int32_t> never_mask = {101, 102};
};

// Masks one row; a pure function of (row, epoch_seed, row_index, config). input_ids_out and labels_out have
// the row's length. Draws: u for position i is Philox(key = epoch_seed, counter = (i/4, 0, row_index)) lane
// i%4; the random id uses counter (i/4, 1, row_index).
void mask_packed_row(std::span<const int32_t> row, uint64_t epoch_seed, uint64_t row_index,
                     const PackedMaskConfig& config, std::span<int32_t> input_ids_out, std::span<int32_t> labels_out);

}  // namespace dense::data
