#pragma once
// Streaming MLM batches from HDF5 shards (spec §3.3): packed shards with masks drawn at load time (spec §3.2),
// or LDDL `bert` shards with their static masks. A background thread reads whole shards and assembles batches
// ahead of the trainer (a bounded queue of `prefetch` batches, so at most two shards are in memory).
//
// Order: one global stream of rows, the same for any number of ranks. Epoch e visits every shard in an order
// shuffled from (seed, e), and each shard's rows in a permutation from (seed, e, file index); batches run
// across shard boundaries. The stream is cut into blocks of batch_size x world rows and rank r takes rows
// [r x batch_size, (r + 1) x batch_size) of each block, so the ranks' batches are disjoint and their union
// is what one process with world x batch_size rows per batch would see. Packed rows are masked from
// (seed, e, file index, row), so every epoch sees fresh masks and any batch can be rebuilt alone. The Cursor
// after a batch (epoch, position in the epoch's shard order, rows taken from that shard: the end of its
// block) is the same on every rank and is all a resumed run needs, with any world size, to see exactly the
// rows it would have seen. (The reference gives each rank whole shards, spec §3.3, which ties the data order
// to the world size; docs/decisions.md.)
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "data/shard_packed.h"

namespace dense::train {

struct Cursor {
  int64_t epoch = 0;
  int64_t shard = 0;   // position in the epoch's shard order
  int64_t offset = 0;  // rows of that shard already taken
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
  std::string vocab_hash;  // required shard vocab_hash; empty: any
  int64_t seq_len = 0;     // required length; 0: the shards' (all must agree)
  data::PackedMaskConfig masking;
  int64_t rank = 0, world = 1;
  int64_t prefetch = 2;
  bool loop = true;  // false: one pass in file order (validation), then next() returns false
};

// One batch on the host, ready to become model inputs.
struct HostBatch {
  int64_t batch = 0, seq_len = 0;
  std::vector<int64_t> input_ids;     // [batch, seq_len]
  std::vector<int64_t> mlm_labels;    // [batch, seq_len], -1 = not predicted
  std::vector<float> attention_mask;  // [batch, seq_len], empty: every token real (packed)
  std::vector<int64_t> token_type_ids;  // [batch, seq_len], empty: none (packed)
  int64_t masked = 0;                 // labels >= 0
  Cursor next;                        // the cursor after this batch
  int64_t epoch = 0;                  // epoch of the batch's first row
};

// Shard files of a data path: the file itself, or every *.hdf5 / *.h5 in the folder (sorted). Errors name
// the path when it is missing or holds no shard.
std::vector<std::string> list_shards(const std::string& path);

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

  struct Shard;
  LoaderOptions opt_;
  std::vector<int64_t> file_rows_;  // rows per file (indexed like opt_.files)
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
