#pragma once
// Streaming MLM batches from HDF5 shards (docs/model.md §3.3): packed shards with masks drawn at load time (docs/model.md §3.2),
// or LDDL `bert` shards with their static masks. A background thread reads whole shards and assembles batches
// ahead of the trainer (a bounded queue of `prefetch` batches, so at most two shards are in memory).
//
// Order: one global stream of rows, the same for any number of ranks. Epoch e visits every shard in an order
// shuffled from (seed, e), `mix_shards` shards at a time: the rows of each group of mix_shards consecutive
// shards of that order are read together and drawn in one permutation from (seed, e, group), so that a batch
// mixes the corpora and documents of several shards (a shuffle buffer across shards; with mix_shards = 1 each
// shard's rows are drawn alone, in a permutation from (seed, e, file index)). Batches run across group
// boundaries. The stream is cut into blocks of batch_size x world rows and rank r takes rows
// [r x batch_size, (r + 1) x batch_size) of each block, so the ranks' batches are disjoint and their union
// is what one process with world x batch_size rows per batch would see. Packed rows are masked from
// (seed, e, file index, row), so every epoch sees fresh masks and any batch can be rebuilt alone. The Cursor
// after a batch (epoch, position in the epoch's shard order of its group's first shard, rows taken from that
// group: the end of its block, and the group size) is the same on every rank and is all a resumed run needs, with any world size, to see exactly the
// rows it would have seen. (The reference gives each rank whole shards, docs/model.md §3.3, which ties the data order
// to the world size; docs/decisions.md.)
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/error.h"
#include "data/shard_packed.h"

namespace dense::train {

// A shard that could not be read (checksum, truncation, HDF5 error) after the start-up check passed: the
// trainer saves a checkpoint before it stops, or data.on_bad_shard: skip leaves the shard out.
class BadShardError : public Error {
 public:
  BadShardError(std::string shard, const std::string& message) : Error(message), shard_(std::move(shard)) {}
  const std::string& shard() const { return shard_; }

 private:
  std::string shard_;
};

struct Cursor {
  int64_t epoch = 0;
  int64_t shard = 0;   // position in the epoch's shard order of the current group's first shard
  int64_t offset = 0;  // rows of that group already taken
  // The group size the positions are counted in (LoaderOptions::mix_shards). A cursor saved before groups
  // existed has none in its JSON and reads as 1, which is how those runs read their shards.
  int64_t mix_shards = 1;
  bool at_start() const { return epoch == 0 && shard == 0 && offset == 0; }
  bool operator==(const Cursor&) const = default;
  nlohmann::json to_json() const;
  static Cursor from_json(const nlohmann::json& j);  // errors name the missing key
};

struct LoaderOptions {
  std::vector<std::string> files;  // shards, in a fixed (sorted) order
  std::string format = "auto";     // auto | packed | bert
  int64_t batch_size = 8;          // sequences per batch
  uint64_t seed = 0;
  bool shuffle = true;
  // Shards read and drawn from together (see Order above); memory holds this many shards. Validation passes
  // (loop = false) read one shard at a time in file order whatever it is.
  int64_t mix_shards = 1;
  std::string vocab_hash;  // required shard vocab_hash; empty: any
  int64_t seq_len = 0;     // required length; 0: the shards' (all must agree)
  data::PackedMaskConfig masking;
  int64_t rank = 0, world = 1;
  int64_t prefetch = 2;
  bool loop = true;  // false: one pass in file order (validation), then next() returns false
  // Every token id (and bert label) must be below it; 0: unchecked. The trainer passes model.vocab_size, so
  // data prepared with a larger vocabulary is an error naming the shard and row, not an embedding-kernel check.
  int64_t vocab_size = 0;
  // A shard that fails to read mid-run: false throws BadShardError; true skips it (the rest of that shard in
  // that epoch) and reports through on_warning. Skipping is a function of the files, so a resumed run skips
  // exactly as the interrupted one did.
  bool skip_bad_shards = false;
  std::function<void(const std::string&)> on_warning;  // called from the loader thread
};

// What the start-up check found, per file (indexed like LoaderOptions::files).
struct ShardSetInfo {
  std::string format;
  int64_t seq_len = 0;
  std::vector<int64_t> rows;
  int64_t total_rows = 0;
};
// Opens every shard before any batch is read and checks its integrity header and length (a truncated or
// extended file), format, vocab_hash and seq_len against the options and each other: damage found here
// costs nothing, found at step 10,000 it costs a restart. The whole-file CRC is left to the read (it reads
// every byte). `key` names the config key the files come from (data.train, data.validation) in errors.
ShardSetInfo check_shards(const LoaderOptions& options, const std::string& key = "");

// One batch on the host, ready to become model inputs.
struct HostBatch {
  int64_t batch = 0, seq_len = 0;
  std::vector<int64_t> input_ids;       // [batch, seq_len]
  std::vector<int64_t> mlm_labels;      // [batch, seq_len], -1 = not predicted
  std::vector<float> attention_mask;    // [batch, seq_len], empty: every token real (packed)
  std::vector<int64_t> token_type_ids;  // [batch, seq_len], empty: none (packed)
  int64_t masked = 0;                   // labels >= 0
  Cursor next;                          // the cursor after this batch
  int64_t epoch = 0;                    // epoch of the batch's first row
};

// Shard files of a data path: the file itself, or every *.hdf5 / *.h5 in the folder (sorted). Errors name
// the path (and `key`, the config key it came from, when given) when it is empty, missing or holds no shard.
std::vector<std::string> list_shards(const std::string& path, const std::string& key = "");

class ShardLoader {
 public:
  ShardLoader(LoaderOptions options, Cursor start = {});
  ~ShardLoader();
  ShardLoader(const ShardLoader&) = delete;
  ShardLoader& operator=(const ShardLoader&) = delete;

  // The next batch (blocks while the loader thread prepares it). False at the end of a non-looping pass.
  // A read error in the loader thread is rethrown here.
  bool next(HostBatch& out);
  int64_t seq_len() const { return seq_len_; }
  const std::string& format() const { return format_; }
  int64_t rows_per_epoch() const { return rows_per_epoch_; }  // rows of one epoch, all ranks together

 private:
  void run(Cursor start);
  std::vector<int64_t> shard_order(int64_t epoch) const;
  std::vector<int64_t> row_order(int64_t epoch, int64_t file, int64_t rows) const;
  int64_t group_size() const { return opt_.loop ? opt_.mix_shards : 1; }

  struct Shard;
  Shard read_shard(const std::string& path, int64_t file) const;  // the whole shard; errors name it
  LoaderOptions opt_;
  std::vector<int64_t> file_rows_;  // rows per file (indexed like opt_.files)
  void warn(const std::string& message) const;
  std::string format_;
  int64_t seq_len_ = 0;
  int64_t rows_per_epoch_ = 0;

  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<HostBatch> queue_;
  bool done_ = false, stop_ = false;
  std::exception_ptr error_;
};

}  // namespace dense::train
